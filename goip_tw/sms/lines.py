"""Adapts a modem line (goip_tw.modem.line.LineService) to the queue's ISmsLine.

The queue sends one part at a time, so a crash between parts is resolvable part by
part; ``Modem.send_sms`` splits whole texts itself, so this adapter builds the one
SMS-SUBMIT (TS 23.040 §9.2.2.2) for a given part with its concatenation element
(``goip_tw.modem.pdu.encode_submit_part``) and submits it with ``AT+CMGS`` (TS 27.005 §3.5.1) through the modem's command
queue.  The SIM's last used TP-MR is EF_SMSS byte 1 (TS 31.102 §4.2.28, file
6F43) read with ``AT+CRSM=176,28483,0,0,2`` (TS 27.007 §8.18 READ BINARY).
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from goip_tw.modem import at
from goip_tw.modem import pdu as mpdu
from goip_tw.sms.queue import ISmsLine, LineGone, SendError

EF_SMSS_READ = "AT+CRSM=176,28483,0,0,2"


def encode_part(recipient: str, text: str, concat: tuple[int, int, int] | None,
                status_report: bool) -> tuple[str, int]:
    """One SMS-SUBMIT part as ``(pdu_hex, tpdu_length)`` for AT+CMGS."""
    c = mpdu.Concat(*concat) if concat else None
    return mpdu.encode_submit_part(recipient, text, c, status_report=status_report)


def parse_crsm_last_mr(value: str) -> int | None:
    """``144,0,"XXYY"`` -> XX; None unless the SIM answered 90 00 with data."""
    fields = [f.strip().strip('"') for f in value.split(",")]
    if len(fields) < 3 or fields[0] != "144" or len(fields[2]) < 2:
        return None
    try:
        return int(fields[2][:2], 16)
    except ValueError:
        return None


@implementer(ISmsLine)
class ModemSmsLine:
    def __init__(self, line_service, allowed=None):
        self.line = line_service
        self.number = line_service.number
        self.allowed = allowed  # callable(line) -> bool: SIM limits (F-470/F-473)

    def can_send(self) -> bool:
        if self.line.state != "registered" or self.line.modem is None:
            return False
        return self.allowed is None or bool(self.allowed(self.number))

    @defer.inlineCallbacks
    def send_part(self, recipient, text, concat, report):
        modem = self.line.modem
        if modem is None:
            raise LineGone("no module")
        try:
            hexpdu, length = encode_part(recipient, text, concat, report)
        except (mpdu.PduError, ValueError) as e:
            raise SendError(None, str(e), permanent=True)
        try:
            resp = yield modem.cmd(f"AT+CMGS={length}", kind="sms", payload=hexpdu)
        except at.PortClosed:
            raise LineGone("port closed during AT+CMGS")
        except at.AtTimeout:
            raise LineGone("AT+CMGS timed out")
        except at.CmsError as e:
            code = e.code if isinstance(e.code, int) else None
            raise SendError(code, str(e.text or e.result))
        except at.AtError as e:
            raise SendError(None, e.result)
        value = resp.value("+CMGS") or ""
        mr = value.split(",")[0].strip()
        return int(mr) if mr.isdigit() else -1

    @defer.inlineCallbacks
    def last_used_mr(self):
        modem = self.line.modem
        if modem is None:
            return None
        try:
            resp = yield modem.cmd(EF_SMSS_READ)
        except at.AtError:
            return None
        return parse_crsm_last_mr(resp.value("+CRSM") or "")
