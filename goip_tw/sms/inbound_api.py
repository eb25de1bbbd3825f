"""JSON API for the inbox/outbox (F-506), USSD (F-504) and own numbers (F-510).

A Klein app on a class (Klein's non-global-state pattern) mounted by the web service
under ``/sms/`` (``InboundService.web_resources``). HTTP Basic auth as the web UI
(goip_tw/web/auth.py, F-301): reading the boxes needs the "sms" level, deleting,
USSD and own-number discovery need "admin". Bad input answers 400 with
``{"error": ..., "field": ...}``.

    GET    /sms/inbox?line=&before=&limit=&q=      newest first, {"entries", "next_before"}
    GET    /sms/outbox?...
    DELETE /sms/inbox?line=        (no line: every line)   -> {"deleted": n}
    DELETE /sms/outbox?line=
    POST   /sms/ussd               {"lines": [1, 2], "code": "*100#"}
    POST   /sms/ussd/<line>/reply  {"answer": "1"}
    POST   /sms/ussd/<line>/cancel
    GET    /sms/own-numbers
    POST   /sms/own-numbers/discover {"line": 1, "iccid": "...", "method": "ussd|sms|token"}
"""

from __future__ import annotations

import json

import attrs
from klein import Klein
from twisted.logger import Logger

from goip_tw.sms.history import HistoryError
from goip_tw.sms.ownnumber import DiscoveryFailed

log = Logger()

MAX_BODY = 16 * 1024


class BadRequest(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def _json(request, data, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _arg(request, name: str) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(name, "not UTF-8") from None


def _int_arg(request, name: str, default=None):
    raw = _arg(request, name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(name, f"{raw[:20]!r} is not a number")
    return int(raw)


def _body(request) -> dict:
    raw = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(raw) > MAX_BODY:
        raise BadRequest("body", "too large")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise BadRequest("body", "not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body", "must be a JSON object")
    return data


def _line(value, field="line") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 512:
        raise BadRequest(field, f"{value!r} is not a line number")
    return value


class InboundApi:
    app = Klein()

    def __init__(self, service):
        self.service = service  # goip_tw.sms.inbound_service.InboundService

    def _auth(self, request, needed: str) -> bool:
        from goip_tw.web import auth

        return auth.authenticate(request, self.service.gateway.config.users, needed) is not None

    @app.handle_errors(BadRequest, HistoryError)
    def bad_request(self, request, failure):
        e = failure.value
        field = getattr(e, "field", None) or str(e).split(":", 1)[0]
        log.info("sms api: bad request, field {field}", field=field)
        return _json(request, {"error": str(e), "field": field}, 400)

    # -- history ----------------------------------------------------------------------

    @app.route("/<box>", methods=["GET"])
    def page(self, request, box):
        if box not in ("inbox", "outbox"):
            request.setResponseCode(404)
            return b""
        if not self._auth(request, "sms"):
            return b""
        d = self.service.history.page(
            box, line=_int_arg(request, "line"), before_id=_int_arg(request, "before"),
            limit=_int_arg(request, "limit", 20), search=_arg(request, "q") or "")
        return d.addCallback(lambda page: _json(request, {
            "entries": [attrs.asdict(e) for e in page.entries],
            "next_before": page.next_before}))

    @app.route("/<box>", methods=["DELETE"])
    def delete(self, request, box):
        if box not in ("inbox", "outbox"):
            request.setResponseCode(404)
            return b""
        if not self._auth(request, "admin"):
            return b""
        d = self.service.history.delete(box, _int_arg(request, "line"))
        return d.addCallback(lambda n: _json(request, {"deleted": n}))

    # -- USSD -------------------------------------------------------------------------

    @app.route("/ussd", methods=["GET"])
    def ussd_state(self, request):
        if not self._auth(request, "admin"):
            return b""
        ussd = self.service.ussd
        states = {str(n): attrs.asdict(r) for n, r in sorted(ussd._last.items())}
        return _json(request, states)

    @app.route("/ussd", methods=["POST"])
    def ussd_send(self, request):
        if not self._auth(request, "admin"):
            return b""
        data = _body(request)
        lines = data.get("lines")
        if not isinstance(lines, list) or not lines or len(lines) > 512:
            raise BadRequest("lines", "a non-empty list of line numbers")
        lines = [_line(n, "lines") for n in lines]
        code = data.get("code")
        if not isinstance(code, str) or not code:
            raise BadRequest("code", "a USSD code such as *100#")
        d = self.service.ussd.send(lines, code)
        return d.addCallback(lambda results: _json(
            request, {str(n): attrs.asdict(r) for n, r in results.items()}))

    @app.route("/ussd/<int:line>/reply", methods=["POST"])
    def ussd_reply(self, request, line):
        if not self._auth(request, "admin"):
            return b""
        answer = _body(request).get("answer")
        if not isinstance(answer, str) or not answer:
            raise BadRequest("answer", "the menu choice, e.g. 1")
        d = self.service.ussd.reply(_line(line), answer)
        return d.addCallback(lambda r: _json(request, attrs.asdict(r)))

    @app.route("/ussd/<int:line>/cancel", methods=["POST"])
    def ussd_cancel(self, request, line):
        if not self._auth(request, "admin"):
            return b""
        d = self.service.ussd.cancel(_line(line))
        return d.addCallback(lambda r: _json(request, attrs.asdict(r)))

    # -- own numbers ------------------------------------------------------------------

    @app.route("/own-numbers", methods=["GET"])
    def own_numbers(self, request):
        if not self._auth(request, "admin"):
            return b""
        return self.service.own_numbers.known().addCallback(
            lambda rows: _json(request, rows))

    @app.route("/own-numbers/discover", methods=["POST"])
    def discover(self, request):
        if not self._auth(request, "admin"):
            return b""
        data = _body(request)
        line = _line(data.get("line"))
        iccid = data.get("iccid")
        if not isinstance(iccid, str) or not iccid.isalnum() or not 10 <= len(iccid) <= 22:
            raise BadRequest("iccid", "the SIM's ICCID (10-22 digits)")
        method = data.get("method")
        if method not in ("ussd", "sms", "token"):
            raise BadRequest("method", "one of ussd, sms, token")
        d = self.service.discover(line, iccid, method)

        def found(number):
            return _json(request, {"iccid": iccid, "number": number, "method": method})

        def failed(f):
            f.trap(DiscoveryFailed)
            return _json(request, {"error": f.getErrorMessage(), "field": "method"}, 409)

        return d.addCallbacks(found, failed)


def resource(service):
    return InboundApi(service).app.resource()

