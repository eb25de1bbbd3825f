"""The GoIP HTTP SMS endpoints (SPEC §7) so existing GoIP integrations work unchanged.

``GET /default/en_US/send.html?u=<user>&p=<password>&l=<line>&n=<number>&m=<text>``
answers ``Sending,L<line> Send SMS to:<number>; ID:<id>`` once the SMS is stored
(durable, like every other source), or ``ERROR,<reason>``.
``GET /default/en_US/send_status.xml?u=&p=`` answers ``<send-sms-status>`` with
``<idN>``, ``<statusN>`` (DONE / STARTED / ERROR) and ``<errorN>`` for the latest
HTTP-submitted SMS of each line N.  Users are those of F-301 allowed to send SMS
(admin, and sms/user when enabled).

Mounting: the web app mounts ``SmsService.web_resources()`` = ``{"default":
GoipHttpApi(...).app.resource()}``; the routes also answer with the full
``/default/en_US/...`` path, so the resource can be mounted at the root as well.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.sms.model import EncodeError, Submission
from goip_tw.sms.queue import NotReady, QueueFull
from goip_tw.sms.router import RouteError

MAX_TEXT = 2000
_STATUS = {"queued": "STARTED", "sending": "STARTED", "assembling": "STARTED", "sent": "DONE",
           "delivered": "DONE", "failed": "ERROR", "expired": "ERROR", "cancelled": "ERROR"}


def _latest_per_line(conn, lines: int):
    out = {}
    for r in conn.execute(
            "SELECT id, COALESCE(sent_line, line) AS l, state, error FROM sms_message"
            " WHERE source = 'http' AND id IN (SELECT MAX(id) FROM sms_message"
            " WHERE source = 'http' GROUP BY COALESCE(sent_line, line))"):
        if r["l"] is not None and r["l"] <= lines:
            out[r["l"]] = dict(r)
    return out


class GoipHttpApi:
    log = Logger()
    app = Klein()

    def __init__(self, queue, check_password, clock=None, line_count=lambda: 32):
        self.queue = queue
        self.check_password = check_password
        self.clock = clock
        self.line_count = line_count

    def _arg(self, request, name: str) -> str:
        raw = request.args.get(name.encode(), [b""])[0]
        return raw.decode("utf-8")

    def _plain(self, request, code: int, text: str) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return text.encode("utf-8")

    def _authorised(self, request) -> bool:
        user, pw = self._arg(request, "u"), self._arg(request, "p")
        if user and self.check_password(user, pw):
            return True
        self.log.warn("auth failure: service=goip-http user={user} address={host}",
                      user=user[:32], host=request.getClientAddress().host)
        return False

    @app.route("/en_US/send.html", methods=["GET", "POST"])
    @app.route("/default/en_US/send.html", methods=["GET", "POST"])
    def send(self, request):
        try:
            if not self._authorised(request):
                return self._plain(request, 401, "ERROR,authentication failed")
            line_text, number, text = (self._arg(request, k) for k in ("l", "n", "m"))
        except UnicodeDecodeError:
            self.log.warn("send.html: a parameter is not UTF-8")
            return self._plain(request, 400, "ERROR,parameters must be UTF-8")
        line = None
        if line_text:
            if not line_text.isdigit() or not 1 <= int(line_text) <= self.line_count():
                self.log.warn("send.html: bad line {line!r}", line=line_text[:10])
                return self._plain(request, 400, f"ERROR,l: no line {line_text[:10]}")
            line = int(line_text)
        if not number:
            return self._plain(request, 400, "ERROR,n: number missing")
        if not text or len(text) > MAX_TEXT:
            return self._plain(request, 400, f"ERROR,m: text must be 1-{MAX_TEXT} characters")
        d = self.queue.submit(Submission(recipient=number, text=text, source="http",
                                         source_ref=self._arg(request, "u"), line=line))

        def done(acc):
            return self._plain(request, 200, f"Sending,L{line or ''} Send SMS to:{number};"
                                             f" ID:{acc.message}")

        def failed(f):
            e = f.value
            if isinstance(e, (RouteError, EncodeError)):
                code = 400
            elif isinstance(e, (QueueFull, NotReady)):
                code = 503
            else:
                self.log.failure("send.html failed", f)
                return self._plain(request, 500, "ERROR,internal error")
            self.log.warn("send.html refused: {error}", error=str(e))
            return self._plain(request, code, f"ERROR,{e}")
        return d.addCallbacks(done, failed)

    @app.route("/en_US/send_status.xml", methods=["GET"])
    @app.route("/default/en_US/send_status.xml", methods=["GET"])
    @defer.inlineCallbacks
    def send_status(self, request):
        try:
            ok = self._authorised(request)
        except UnicodeDecodeError:
            ok = False
        if not ok:
            return self._plain(request, 401, "ERROR,authentication failed")
        latest = yield self.queue.store.read(_latest_per_line, self.line_count())
        rows = ['<?xml version="1.0" encoding="utf-8"?>', "<send-sms-status>"]
        for n in range(1, self.line_count() + 1):
            r = latest.get(n)
            status = _STATUS.get(r["state"], "") if r else ""
            error = r["error"] if r and status == "ERROR" else ""
            rows += [f"<id{n}>{r['id'] if r else ''}</id{n}>", f"<status{n}>{status}</status{n}>",
                     f"<error{n}>{escape(error)}</error{n}>"]
        rows.append("</send-sms-status>")
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return "\n".join(rows).encode("utf-8")
