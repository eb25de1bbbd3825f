"""SMS via SIP MESSAGE (F-1801, manual Appendix F).

The SIP layer hands over only MESSAGE requests that passed admission like an
INVITE (F-425: address and/or digest), so the gateway is not an open SMS relay.
Target number: the first body line when it is a phone number and text follows it,
else the Request-URI user.  Line: the account the MESSAGE came in on when that is a
line account (``lineN``), else line prefix matching on callee or caller (the
router), else round robin.  The MESSAGE is answered 202 once the SMS is stored;
the optional result report is a MESSAGE back to the sender with the body
``SMS(callid:<Call-ID before '@'>) RELAY OK`` once a module accepted it, or
``RELAY ERROR:<code>`` (the +CMS ERROR code, 0 if none) when it failed or expired.
The report target is kept in the stored message (``source_ref``), so reports
survive a restart.
"""

from __future__ import annotations

import re

from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.sms.model import EncodeError, State, Submission
from goip_tw.sms.queue import NotReady, QueueFull
from goip_tw.sms.router import RouteError

_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_LINE_ACCOUNT = re.compile(r"^line(\d+)$")


def split_target(body: str, recipient: str, first_line: bool = True) -> tuple[str, str]:
    """(number, text) per F-1801."""
    if first_line:
        head, sep, rest = body.partition("\n")
        head = head.strip().replace(" ", "").replace("-", "")
        if sep and _NUMBER.match(head) and rest:
            return head, rest[:-1] if rest.endswith("\r") else rest
    return recipient, body


def _error_code(error: str) -> int:
    m = re.search(r"ERROR:\s*(\d+)", error or "")
    return int(m.group(1)) if m else 0


class SipMessageRelay:
    """``handler.message_received(msg) -> Deferred[int]`` for goip_tw.sip.service."""

    log = Logger()

    def __init__(self, queue, sip, report: bool = True, first_line: bool = True):
        self.queue = queue
        self.sip = sip
        self.report = report
        self.first_line = first_line
        self._unsubscribe = queue.subscribe(self._on_event)
        self._reported: set[int] = set()

    def close(self):
        self._unsubscribe()

    def message_received(self, msg) -> defer.Deferred:
        ctype = (msg.content_type or "text/plain").split(";")[0].strip().lower()
        if ctype != "text/plain":
            self.log.warn("sip MESSAGE {call_id}: content type {ctype} refused",
                          call_id=msg.call_id, ctype=ctype)
            return defer.succeed(415)
        try:
            body = msg.body.decode("utf-8")
        except UnicodeDecodeError:
            self.log.warn("sip MESSAGE {call_id}: body is not UTF-8", call_id=msg.call_id)
            return defer.succeed(400)
        number, text = split_target(body, msg.recipient, self.first_line)
        m = _LINE_ACCOUNT.match(msg.account or "")
        line = int(m.group(1)) if m else None
        callid = (msg.call_id or "").split("@")[0]
        host, port = msg.source
        target = f"{msg.sender}@{host}:{port}" if msg.sender else ""
        sub = Submission(recipient=number, text=text, source="sip",
                         source_ref=f"{callid}|{target}|{line or ''}", sender=msg.sender,
                         line=line)
        d = self.queue.submit(sub)

        def accepted(acc):
            self.log.info("sip MESSAGE {call_id} from {sender} stored as sms {message}",
                          call_id=msg.call_id, sender=msg.sender, message=acc.message)
            return 202

        def refused(f):
            e = f.value
            if isinstance(e, (RouteError, EncodeError)):
                code, reason = 404 if isinstance(e, RouteError) else 488, str(e)
            elif isinstance(e, (QueueFull, NotReady)):
                code, reason = 503, str(e)
            else:
                self.log.failure("sip MESSAGE {call_id} not stored", f, call_id=msg.call_id)
                code, reason = 500, "internal error"
            self.log.warn("sip MESSAGE {call_id} refused: {reason}", call_id=msg.call_id,
                          reason=reason)
            self._send_report(sub.source_ref, f"RELAY ERROR:{code}")
            return code

        return d.addCallbacks(accepted, refused)

    def _on_event(self, event) -> None:
        if event.source != "sip" or event.seq is not None or event.message in self._reported:
            return
        if event.state in (State.SENT, State.FAILED, State.EXPIRED, State.CANCELLED):
            # One report per message: a later status report does not change it.
            self._reported.add(event.message)
            if len(self._reported) > 100000:
                self._reported.clear()
        if event.state is State.SENT:
            self._send_report(event.source_ref, "RELAY OK")
        elif event.state in (State.FAILED, State.EXPIRED, State.CANCELLED):
            self._send_report(event.source_ref, f"RELAY ERROR:{_error_code(event.error)}")

    def _send_report(self, source_ref: str, result: str) -> None:
        if not self.report:
            return
        callid, _, rest = source_ref.partition("|")
        target, _, line = rest.partition("|")
        if not target:
            return
        body = f"SMS(callid:{callid}) {result}".encode("utf-8")
        d = self.sip.send_message(target, body, line=int(line) if line else None)
        d.addCallbacks(
            lambda code: self.log.info("result report to {target}: {result} ({code})",
                                       target=target, result=result, code=code),
            lambda f: self.log.warn("result report to {target} failed: {error}",
                                    target=target, error=f.getErrorMessage()))
