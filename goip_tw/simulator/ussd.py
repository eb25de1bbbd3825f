"""USSD: the network's menu tree and ``AT+CUSD`` (3GPP TS 27.007 7.15).

A request such as ``*111#`` opens a node; a node with children keeps the
session open (``+CUSD: 1``, further action required) and the reply ``1``
follows the child.  Replies come plain (DCS 15), as GSM 7-bit packed hex
(DCS 15, as several Qualcomm-based modules show them) or as UCS2 hex (DCS 72,
TS 23.038 section 5).  ``AT+CUSD=2`` cancels (``+CUSD: 2``).  A Huawei module
in its transparent ``^USSDMODE`` takes and gives packed hex (see :mod:`.at_huawei`).
"""

from __future__ import annotations

import attrs

from goip_tw.modem import gsm7

from .at import AtError, command
from .timers import Timers

REPLY_DELAY = 1.0
SESSION_TIMEOUT = 60.0


@attrs.frozen
class UssdNode:
    text: str
    children: dict = attrs.field(factory=dict)
    encoding: str = "text"  # text | gsm7packed | ucs2


def default_menu() -> dict[str, UssdNode]:
    balance = UssdNode("Your balance is {balance:.2f} {currency}.")
    number = UssdNode("Your number is {msisdn}.")
    offers = UssdNode("Offers:\n1. 100 minutes\n2. 1 GB", {
        "1": UssdNode("100 minutes activated."),
        "2": UssdNode("1 GB activated."),
    })
    return {
        "*100#": balance,
        "*101#": number,
        "*111#": UssdNode("Main menu\n1. Balance\n2. My number\n3. Offers",
                          {"1": balance, "2": number, "3": offers}),
        "*123#": UssdNode("余额 {balance:.2f} {currency} 😀", encoding="ucs2"),
        "*124#": UssdNode("Balance {balance:.2f} {currency}", encoding="gsm7packed"),
    }


class UssdService:
    def __init__(self, network, menu: dict | None = None):
        self.network = network
        self.menu = menu if menu is not None else default_menu()
        self.timers = Timers(network.clock)

    def stop(self) -> None:
        self.timers.cancel_all()

    def request(self, module, text: str) -> None:
        session = module.ussd_session
        node = None
        if session is not None and text in session.children:
            node = session.children[text]
        elif text in self.menu:
            node = self.menu[text]
        self.network.record("ussd", module=module.number, request=text)
        if node is None:
            module.ussd_session = None
            self.timers.later(REPLY_DELAY, self._send, module, 0, "Unknown service code.",
                              "text")
            return
        module.ussd_session = node if node.children else None
        sim = module.sim
        fields = {"balance": sim.balance, "currency": sim.currency, "msisdn": sim.msisdn}
        try:
            reply = node.text.format(**fields)
        except (KeyError, ValueError):
            reply = node.text
        self.timers.later(REPLY_DELAY, self._send, module, 1 if node.children else 0,
                          reply, node.encoding)

    def push(self, module, text: str, *, encoding="text", action_required=False) -> None:
        """A network-initiated USSD message."""
        self._send(module, 1 if action_required else 0, text, encoding)

    def _send(self, module, mode: int, text: str, encoding: str) -> None:
        if not module.settings.cusd:  # TS 27.007: result code presentation off
            return
        if transparent(module) and encoding != "ucs2" and gsm7.can_encode(text):
            encoding = "gsm7packed"
        if encoding == "ucs2":
            module.urc(f'+CUSD: {mode},"{text.encode("utf-16-be").hex().upper()}",72')
        elif encoding == "gsm7packed" and gsm7.can_encode(text):
            packed = gsm7.pack(gsm7.encode(text)).hex().upper()
            module.urc(f'+CUSD: {mode},"{packed}",15')
        elif module.settings.cscs == "UCS2":
            module.urc(f'+CUSD: {mode},"{text.encode("utf-16-be").hex().upper()}",72')
        else:
            module.urc(f'+CUSD: {mode},"{text}",15')


def transparent(module) -> bool:
    """Huawei ``^USSDMODE: 1``: strings cross the AT port as GSM 7-bit packed hex."""
    return module.dialect == "huawei" and module.settings.ussdmode == 1


def unpack_request(text: str) -> str:
    """A packed-hex USSD request (TS 23.038 6.1.2.3: a 7-septet tail is padded with
    CR, which we drop)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise AtError(50) from None
    if not raw or len(raw) > 160:
        raise AtError(50)
    septets = gsm7.unpack(raw, len(raw) * 8 // 7)
    if len(raw) % 7 == 0 and septets and septets[-1] in (0, 13):
        septets = septets[:-1]
    return gsm7.decode(septets)


@command("+CUSD")
def cusd(module, cmd):
    if cmd.kind == "test":
        return ["+CUSD: (0-2)"]
    if cmd.kind == "read":
        return [f"+CUSD: {module.settings.cusd}"]
    params = cmd.params()
    n = cmd.int_param(0, 0, lo=0, hi=2)
    if n == 2:
        was = module.ussd_session
        module.ussd_session = None
        if was is not None and module.settings.cusd:
            module.urc("+CUSD: 2")
        return []
    module.settings.cusd = n
    if len(params) > 1 and params[1] is not None:
        if not module.registered:
            raise AtError(30)
        text = params[1]
        if transparent(module):
            text = unpack_request(text)
        elif module.settings.cscs == "UCS2":
            try:
                text = bytes.fromhex(text).decode("utf-16-be")
            except ValueError:
                raise AtError(50) from None
        module.network.ussd.request(module, text)
    return []
