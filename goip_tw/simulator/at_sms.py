"""SMS commands and SMS URCs (3GPP TS 27.005).

``+CSMS`` 3.2.1, ``+CPMS`` 3.2.2, ``+CMGF`` 3.2.3, ``+CSCA`` 3.3.1, ``+CSMP``
3.3.2, ``+CSDH`` 3.3.3, ``+CNMI`` 3.4.1 (``+CMTI``, ``+CMT``, ``+CDS``,
``+CDSI``), ``+CMGL`` 3.4.2 / 4.1, ``+CMGR`` 3.4.3 / 4.2, ``+CNMA`` 3.4.4 /
4.6, ``+CMGS`` 3.5.1 / 4.3 (prompt ``> ``, Ctrl-Z sends, ESC aborts), ``+CMGD``
3.5.4.  Quectel's ``+QIND: "smsfull"`` comes from the EC2x AT manual.
"""

from __future__ import annotations

from goip_tw.modem import pdu

from .at import cms, command, quote
from .sim import STAT_CODES, STAT_NAMES

ACK_TIMEOUT = 15.0
STORES = ("SM", "ME", "MT")


def store(module, name: str):
    if name == "ME":
        return module.me_store
    sim = module.sim
    if sim is None:
        raise cms(310)
    return sim.store


def _require_ready(module):
    if module.sim is None:
        raise cms(310)
    if not module.sim_ready:
        raise cms(311)


def _ts(dt) -> str:
    return dt.strftime("%y/%m/%d,%H:%M:%S") + "+00"


def _text(module, text: str) -> str:
    if module.settings.cscs == "UCS2":
        return text.encode("utf-16-be").hex().upper()
    return text


def _from_te(module, text: str) -> str:
    if module.settings.cscs == "UCS2":
        try:
            return bytes.fromhex(text).decode("utf-16-be")
        except ValueError:
            raise cms(305) from None
    return text


# -- incoming (called by the SMS centre) -----------------------------------


def sms_incoming(module, hex_pdu: str, length: int) -> bool:
    """Deliver one SMS-DELIVER part; False when the store is full."""
    mt = module.settings.cnmi[1]
    if mt == 2 and module.pending_ack is None:
        module.urc(*_cmt_lines(module, hex_pdu, length))
        if module.settings.csms == 1:
            module.pending_ack = module.timers.later(
                ACK_TIMEOUT, _ack_timeout, module, hex_pdu, length)
        return True
    target = store(module, module.settings.cpms[2])
    index = target.add(0, hex_pdu, length)
    if index is None:
        if module.dialect == "quectel" and module.settings.qind.get("smsfull"):
            module.urc(f'+QIND: "smsfull","{target.name}"')
        module.network.record("sms_store_full", module=module.number)
        return False
    if mt in (1, 2, 3):
        module.urc(f'+CMTI: "{target.name}",{index}')
    return True


def _cmt_lines(module, hex_pdu: str, length: int) -> list[str]:
    if module.settings.cmgf == 0:
        return [f"+CMT: ,{length}", hex_pdu]
    msg = pdu.decode(hex_pdu)
    return [f'+CMT: "{msg.sender}",,"{_ts(msg.timestamp)}"', _text(module, msg.text)]


def _ack_timeout(module, hex_pdu: str, length: int) -> None:
    """TS 27.005 3.4.4: no +CNMA in time: routing to the TE is switched off
    and the network's retry lands in the store."""
    module.pending_ack = None
    mode, _, bm, _, bfr = module.settings.cnmi
    module.settings.cnmi = (mode, 0, bm, 0, bfr)
    sms_incoming(module, hex_pdu, length)


def status_report_incoming(module, hex_pdu: str, length: int) -> bool:
    """Deliver one SMS-STATUS-REPORT; False when the module cannot take it now
    (unplugged, or its store is full), so the network keeps it and retries."""
    if not module.plugged:
        return False
    ds = module.settings.cnmi[3]
    if ds == 1:
        if module.settings.cmgf == 0:
            module.urc(f"+CDS: {length}", hex_pdu)
        else:
            rep = pdu.decode(hex_pdu)
            module.urc(f'+CDS: 6,{rep.message_ref},"{rep.recipient}",,'
                       f'"{_ts(rep.scts)}","{_ts(rep.discharge_time)}",{rep.status}')
    elif ds == 2:
        target = store(module, module.settings.cpms[2])
        index = target.add(0, hex_pdu, length)
        if index is None:
            module.network.record("sms_store_full", module=module.number)
            return False
        module.urc(f'+CDSI: "{target.name}",{index}')
    return True


# -- settings ----------------------------------------------------------------


@command("+CSMS")
def csms(module, cmd):
    if cmd.kind == "test":
        return ["+CSMS: (0,1)"]
    if cmd.kind == "read":
        return [f"+CSMS: {module.settings.csms},1,1,1"]
    module.settings.csms = cmd.int_param(0, lo=0, hi=1)
    return ["+CSMS: 1,1,1"]


@command("+CMGF")
def cmgf(module, cmd):
    if cmd.kind == "test":
        return ["+CMGF: (0,1)"]
    if cmd.kind == "read":
        return [f"+CMGF: {module.settings.cmgf}"]
    module.settings.cmgf = cmd.int_param(0, 0, lo=0, hi=1)
    return []


@command("+CSCA")
def csca(module, cmd):
    if cmd.kind == "test":
        return []
    if cmd.kind == "read":
        number = module.settings.csca
        return [f'+CSCA: "{number}",{145 if number.startswith("+") else 129}']
    value = cmd.str_param(0)
    if not value or not set(value) <= set("+0123456789"):
        raise cms(304)
    module.settings.csca = value
    return []


@command("+CSMP")
def csmp(module, cmd):
    if cmd.kind == "read":
        return ["+CSMP: %d,%d,%d,%d" % module.settings.csmp]
    if cmd.kind == "test":
        return []
    old = module.settings.csmp
    module.settings.csmp = tuple(cmd.int_param(i, old[i], lo=0, hi=255) for i in range(4))
    return []


@command("+CSDH")
def csdh(module, cmd):
    if cmd.kind == "read":
        return ["+CSDH: 0"]
    return []


@command("+CNMI")
def cnmi(module, cmd):
    if cmd.kind == "test":
        return ["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"]
    if cmd.kind == "read":
        return ["+CNMI: %d,%d,%d,%d,%d" % module.settings.cnmi]
    old = module.settings.cnmi
    highs = (2, 3, 3, 2, 1)
    module.settings.cnmi = tuple(cmd.int_param(i, old[i], lo=0, hi=highs[i]) for i in range(5))
    return []


@command("+CNMA")
def cnma(module, cmd):
    if cmd.kind == "test":
        return ["+CNMA: (0-2)"]
    if module.pending_ack is None:
        raise cms(340)
    module.timers.cancel(module.pending_ack)
    module.pending_ack = None
    return []


@command("+CPMS")
def cpms(module, cmd):
    if cmd.kind == "test":
        stores = "(" + ",".join(quote(s) for s in STORES) + ")"
        return [f"+CPMS: {stores},{stores},{stores}"]
    _require_ready(module)
    if cmd.kind == "read":
        parts = []
        for name in module.settings.cpms:
            st = store(module, name)
            parts.append(f'"{name}",{st.used},{st.capacity}')
        return ["+CPMS: " + ",".join(parts)]
    params = cmd.params()
    names = list(module.settings.cpms)
    for i, value in enumerate(params[:3]):
        if value is None:
            continue
        if value.upper() not in STORES:
            raise cms(302)
        names[i] = value.upper()
    module.settings.cpms = tuple(names)
    out = []
    for name in names:
        st = store(module, name)
        out += [str(st.used), str(st.capacity)]
    return ["+CPMS: " + ",".join(out)]


# -- sending -------------------------------------------------------------------


@command("+CMGS")
def cmgs(module, cmd):
    if cmd.kind == "test":
        return []
    if cmd.kind != "set":
        raise cms(302)
    _require_ready(module)
    if module.settings.cmgf == 0:
        length = cmd.int_param(0, lo=7, hi=200)
        return module.prompt(lambda text: _send_pdu(module, text, length))
    number = _from_te(module, cmd.str_param(0))
    return module.prompt(lambda text: _send_text(module, number, text))


def _check_network(module):
    if not module.registered:
        raise cms(331)


def _send_pdu(module, text: str, length: int) -> list[str]:
    _check_network(module)
    hex_pdu = "".join(text.split())
    try:
        message = pdu.decode(hex_pdu, incoming=False, smsc_included=True)
        smsc_len = int(hex_pdu[:2], 16) + 1
    except (pdu.PduError, ValueError) as exc:
        module.network.record("sms_rejected", module=module.number, reason=str(exc))
        raise cms(304) from None
    if len(hex_pdu) // 2 - smsc_len != length or not isinstance(message, pdu.Submit):
        raise cms(304)
    mr = module.network.sms.submit(module, message)
    return [f"+CMGS: {mr}"]


def _send_text(module, number: str, text: str) -> list[str]:
    _check_network(module)
    body = _from_te(module, text)
    srr = bool(module.settings.csmp[0] & 0x20)
    mr = module.network.sms.submit_text(module, number, body, status_report=srr)
    return [f"+CMGS: {mr}"]


# -- reading -------------------------------------------------------------------


def _stat_from(module, value) -> int:
    if value is None:
        return 0 if module.settings.cmgf == 0 else STAT_CODES["REC UNREAD"]
    if module.settings.cmgf == 1:
        code = STAT_CODES.get(value.upper())
        if code is None:
            raise cms(302)
        return code
    try:
        code = int(value)
    except ValueError:
        raise cms(304) from None
    if code not in STAT_NAMES:
        raise cms(304)
    return code


def _text_header(module, msg, stat: int) -> tuple[str, str]:
    decoded = pdu.decode(msg.pdu)
    name = STAT_NAMES[stat]
    if isinstance(decoded, pdu.StatusReport):
        return f'"{name}",6,{decoded.message_ref},"{decoded.recipient}"', ""
    return (f'"{name}","{decoded.sender}",,"{_ts(decoded.timestamp)}"',
            _text(module, decoded.text))


@command("+CMGR")
def cmgr(module, cmd):
    if cmd.kind == "test":
        return []
    if cmd.kind != "set":
        raise cms(302)
    _require_ready(module)
    index = cmd.int_param(0, lo=0, hi=10000)
    st = store(module, module.settings.cpms[0])
    msg = st.get(index)
    if msg is None:
        raise cms(321)
    stat = msg.stat
    if msg.stat == 0:
        msg.stat = 1
    if module.settings.cmgf == 0:
        return [f"+CMGR: {stat},,{msg.tpdu_len}", msg.pdu]
    header, body = _text_header(module, msg, stat)
    return [f"+CMGR: {header}", body]


@command("+CMGL")
def cmgl(module, cmd):
    if cmd.kind == "test":
        if module.settings.cmgf == 0:
            return ["+CMGL: (0-4)"]
        return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
    _require_ready(module)
    params = cmd.params()
    stat = _stat_from(module, params[0] if params else None)
    st = store(module, module.settings.cpms[0])
    lines = []
    for msg in st.listing(stat):
        shown = msg.stat
        if msg.stat == 0:
            msg.stat = 1
        if module.settings.cmgf == 0:
            lines += [f"+CMGL: {msg.index},{shown},,{msg.tpdu_len}", msg.pdu]
        else:
            header, body = _text_header(module, msg, shown)
            lines += [f"+CMGL: {msg.index},{header}", body]
    return lines


@command("+CMGD")
def cmgd(module, cmd):
    st = store(module, module.settings.cpms[0]) if module.sim else None
    if cmd.kind == "test":
        cap = st.capacity if st else 30
        return [f"+CMGD: (1-{cap}),(0-4)"]
    _require_ready(module)
    index = cmd.int_param(0, lo=0, hi=10000)
    flag = cmd.int_param(1, 0, lo=0, hi=4)
    if flag == 0:
        if not st.delete(index):
            raise cms(321)
    else:
        st.delete_flagged(flag)
    module.timers.later(0.1, module.network.sms.retry_for, module)
    return []


@command("+CMGW")
def cmgw(module, cmd):
    """Write a message to the store (PDU mode: ``<length>[,<stat>]``)."""
    if cmd.kind != "set":
        return []
    _require_ready(module)
    if module.settings.cmgf != 0:
        raise cms(303)
    length = cmd.int_param(0, lo=7, hi=200)
    stat = cmd.int_param(1, 2, lo=0, hi=3)

    def write(text):
        hex_pdu = "".join(text.split())
        st = store(module, module.settings.cpms[1])
        index = st.add(stat, hex_pdu, length)
        if index is None:
            raise cms(322)
        return [f"+CMGW: {index}"]

    return module.prompt(write)


@command("+CRSM")
def crsm(module, cmd):
    """Restricted SIM access (TS 27.007 8.18); only READ BINARY of EF_SMSS
    (6F43, TS 31.102 4.2.28) is simulated: last TP-MR and the memory flag."""
    if cmd.kind == "test":
        return []
    _require_ready(module)
    command_id = cmd.int_param(0, lo=0, hi=255)
    file_id = cmd.int_param(1, 0, lo=0, hi=65535)
    if command_id != 176 or file_id != 0x6F43:
        return ['+CRSM: 106,130,""']  # 6A 82: file not found
    flag = "FE" if module.sim.store.full else "FF"
    return [f'+CRSM: 144,0,"{module.sim.last_mr:02X}{flag}"']
