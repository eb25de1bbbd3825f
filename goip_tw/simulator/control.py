"""JSON control interface of the simulator (Klein), for people and tests in
another process.  Served on 127.0.0.1 only.

    GET  /                       network, modules (pty paths), phones
    GET  /events?since=N         what the network saw (calls, SMS, faults...)
    GET  /sms                    the SMS centre's log
    GET  /calls                  call records (caller, callee, times, cause, DTMF)
    POST /sms        {from, to, text[, encoding]}    a remote party texts
    POST /phones     {number, answer_after, busy, reject, unreachable,
                      hangup_after, audio, dtmf, sms_echo, sms_reply}
    POST /call       {from, to}  a remote phone calls (a SIM)
    POST /hangup     {number}    a remote phone hangs up
    POST /dtmf       {number, digits}
    POST /modules/N/fault    {kind, ...}  silent, slow, garbage, urc_mid, error,
                             store_full, store_clear, unplug, replug, reset, urc, clear
    POST /modules/N/slot     {slot}
    POST /modules/N/sim      {slot, remove} or {slot, iccid, imsi, msisdn[, pin,
                             operator, balance]}   swap the card in a slot
    POST /modules/N/pin2     {}  an operation needed PIN2: AT+CPIN? says SIM PIN2
    POST /modules/N/signal   {rssi[, ber]}
    POST /modules/N/coverage {on}
    POST /modules/N/operator {plmn}
    POST /modules/N/ussd     {text[, encoding]}
    POST /http       {url, status[, body]} or {url, timeout: true}   what
                     AT+QHTTPGET / AT+HTTPACTION answer (timeout: never)

Bad input gets ``400 {"error": ..., "field": ...}`` and a log line naming
the field; it never reaches the network.
"""

from __future__ import annotations

import json

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.web.server import Site

from .phones import PhoneBehaviour
from .sim import SimCard

log = Logger()


class BadRequest(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(field, message)
        self.field = field
        self.message = message


def _body(request) -> dict:
    try:
        data = json.loads(request.content.read() or b"{}")
    except ValueError:
        raise BadRequest("body", "body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body", "body must be a JSON object")
    return data


def _field(data, name, kind=str, *, required=True, default=None):
    if name not in data or data[name] is None:
        if required:
            raise BadRequest(name, f"{name} is required")
        return default
    value = data[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(name, f"{name} must be {kind.__name__}")
    return value


def _digits(data, name, lo, hi) -> str:
    value = _field(data, name)
    if not value.isdigit() or not lo <= len(value) <= hi:
        raise BadRequest(name, f"{name} must be {lo}-{hi} digits")
    return value


def _json(request, payload, code=200):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(payload, default=str).encode()


class ControlApi:
    app = Klein()

    def __init__(self, network):
        self.network = network

    def _module(self, number: str):
        try:
            index = int(number) - 1
        except ValueError:
            raise BadRequest("module", "module must be a number") from None
        if not 0 <= index < len(self.network.modules):
            raise BadRequest("module", f"no module {number}")
        return self.network.modules[index]

    @app.handle_errors(BadRequest)
    def bad_request(self, request, failure):
        err = failure.value
        log.info("simulator control: bad {field}: {message}", field=err.field,
                 message=err.message)
        return _json(request, {"error": err.message, "field": err.field}, 400)

    @app.handle_errors(ValueError)
    def bad_value(self, request, failure):
        log.info("simulator control: bad value: {message}", message=str(failure.value))
        return _json(request, {"error": str(failure.value), "field": "value"}, 400)

    @app.route("/", methods=["GET"])
    def index(self, request):
        return _json(request, self.network.describe())

    @app.route("/events", methods=["GET"])
    def events(self, request):
        raw = request.args.get(b"since", [b"0"])[0]
        try:
            since = int(raw)
        except ValueError:
            raise BadRequest("since", "since must be an integer") from None
        events = self.network.events
        return _json(request, {"next": len(events), "events": events[max(0, since):]})

    @app.route("/calls", methods=["GET"])
    def calls(self, request):
        return _json(request, {"calls": self.network.call_records()})

    @app.route("/sms", methods=["GET"])
    def sms_log(self, request):
        return _json(request, self.network.sms.describe())

    @app.route("/sms", methods=["POST"])
    def send_sms(self, request):
        data = _body(request)
        entry = self.network.sms.send(
            _field(data, "from"), _field(data, "to"), _field(data, "text"),
            encoding=_field(data, "encoding", required=False))
        return _json(request, entry)

    @app.route("/phones", methods=["POST"])
    def add_phone(self, request):
        data = _body(request)
        number = _field(data, "number")
        known = {f.name for f in attrs.fields(PhoneBehaviour)}
        unknown = set(data) - known - {"number"}
        if unknown:
            raise BadRequest(sorted(unknown)[0], "unknown field")
        try:
            behaviour = PhoneBehaviour(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise BadRequest("behaviour", str(exc)) from None
        phone = self.network.phone(number)
        if phone is None:
            phone = self.network.add_remote_phone(number, behaviour)
        else:
            phone.set_behaviour(behaviour)
        return _json(request, phone.describe())

    def _phone(self, data, name="from"):
        number = _field(data, name)
        phone = self.network.phone(number)
        if phone is None:
            phone = self.network.add_remote_phone(number)
        return phone

    @app.route("/call", methods=["POST"])
    def call(self, request):
        data = _body(request)
        phone = self._phone(data)
        call = phone.dial(_field(data, "to"))
        return _json(request, call.record())

    @app.route("/hangup", methods=["POST"])
    def hangup(self, request):
        data = _body(request)
        self._phone(data, "number").hangup()
        return _json(request, {"ok": True})

    @app.route("/dtmf", methods=["POST"])
    def dtmf(self, request):
        data = _body(request)
        digits = _field(data, "digits")
        if not digits or not set(digits.upper()) <= set("0123456789*#ABCD"):
            raise BadRequest("digits", "digits must be 0-9 * # A-D")
        self._phone(data, "number").send_dtmf(digits.upper())
        return _json(request, {"ok": True})

    @app.route("/modules/<number>/fault", methods=["POST"])
    def fault(self, request, number):
        module = self._module(number)
        data = _body(request)
        kind = _field(data, "kind")
        params = {k: v for k, v in data.items() if k != "kind"}
        module.apply_fault(kind, **params)
        return _json(request, module.describe())

    @app.route("/modules/<number>/slot", methods=["POST"])
    def slot(self, request, number):
        module = self._module(number)
        module.switch_slot(_field(_body(request), "slot", int))
        return _json(request, module.describe())

    @app.route("/modules/<number>/sim", methods=["POST"])
    def sim(self, request, number):
        module = self._module(number)
        data = _body(request)
        slot = _field(data, "slot", int)
        if _field(data, "remove", bool, required=False, default=False):
            module.insert_sim(slot, None)
            return _json(request, module.describe())
        card = SimCard(
            iccid=_digits(data, "iccid", 18, 20), imsi=_digits(data, "imsi", 14, 15),
            msisdn=_field(data, "msisdn"),
            operator=_field(data, "operator", required=False, default="00101"),
            pin=_field(data, "pin", required=False),
            balance=_field(data, "balance", float, required=False, default=10.0))
        module.insert_sim(slot, card)
        return _json(request, module.describe())

    @app.route("/modules/<number>/pin2", methods=["POST"])
    def pin2(self, request, number):
        module = self._module(number)
        if module.sim is None:
            raise BadRequest("number", "no SIM in the active slot")
        module.sim.demand_pin2()
        return _json(request, module.describe())

    @app.route("/modules/<number>/signal", methods=["POST"])
    def signal(self, request, number):
        module = self._module(number)
        data = _body(request)
        self.network.set_signal(module, _field(data, "rssi", int),
                                _field(data, "ber", int, required=False, default=99))
        return _json(request, module.describe())

    @app.route("/modules/<number>/coverage", methods=["POST"])
    def coverage(self, request, number):
        module = self._module(number)
        self.network.set_coverage(module, _field(_body(request), "on", bool))
        return _json(request, module.describe())

    @app.route("/modules/<number>/operator", methods=["POST"])
    def operator(self, request, number):
        module = self._module(number)
        self.network.change_operator(module, _field(_body(request), "plmn"))
        return _json(request, module.describe())

    @app.route("/modules/<number>/ussd", methods=["POST"])
    def ussd(self, request, number):
        module = self._module(number)
        data = _body(request)
        encoding = _field(data, "encoding", required=False, default="text")
        if encoding not in ("text", "ucs2", "gsm7packed"):
            raise BadRequest("encoding", "encoding must be text, ucs2 or gsm7packed")
        self.network.ussd.push(module, _field(data, "text"), encoding=encoding)
        return _json(request, {"ok": True})

    @app.route("/http", methods=["POST"])
    def http(self, request):
        data = _body(request)
        if _field(data, "timeout", bool, required=False, default=False):
            self.network.http_responses[_field(data, "url")] = (None, "")
            return _json(request, {"ok": True})
        status = _field(data, "status", int)
        if not 100 <= status <= 599:
            raise BadRequest("status", "status must be 100..599")
        self.network.http_responses[_field(data, "url")] = (
            status, _field(data, "body", required=False, default=""))
        return _json(request, {"ok": True})


def listen_control(reactor, network, port: int, interface: str = "127.0.0.1"):
    """Serve the control API; returns the listening port."""
    site = Site(ControlApi(network).app.resource())
    site.noisy = False
    return reactor.listenTCP(port, site, interface=interface)
