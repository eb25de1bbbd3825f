"""The JSON control interface, the command line and the gateway service."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import pytest_twisted
import treq
from treq.testing import StubTreq
from twisted.internet import reactor

from goip_tw.simulator.control import ControlApi, listen_control

from .conftest import pump


def ready(sim, modules=2):
    s = sim(modules=modules)
    s.settle(3)
    return s


def call(stub, method, path, body=None):
    d = getattr(stub, method)(f"http://sim{path}",
                              data=json.dumps(body).encode() if body is not None else None)
    responses = []
    d.addCallback(lambda r: treq.json_content(r).addCallback(lambda j: (r.code, j)))
    d.addBoth(responses.append)
    stub.flush()
    assert responses, "no response"
    if isinstance(responses[0], Exception) or hasattr(responses[0], "raiseException"):
        responses[0].raiseException()
    return responses[0]


@pytest.fixture
def api(sim):
    s = ready(sim)
    stub = StubTreq(ControlApi(s.network).app.resource())
    return s, stub


def test_index_lists_modules_and_paths(api):
    s, stub = api
    code, body = call(stub, "get", "/")
    assert code == 200
    assert [m["at_path"] for m in body["modules"]] == [m.at_path for m in s.network.modules]
    assert body["modules"][0]["imei"] == s.network.modules[0].imei
    assert body["modules"][0]["registered"] is True


def test_send_sms_and_read_the_log(api):
    s, stub = api
    to = s.network.modules[1].sim.msisdn
    code, entry = call(stub, "post", "/sms", {"from": "+15554000", "to": to, "text": "hi"})
    assert code == 200 and entry["status"] == "delivered"
    assert s.network.modules[1].sim.store.used == 1
    code, log = call(stub, "get", "/sms")
    assert log["log"][-1]["text"] == "hi"
    code, events = call(stub, "get", "/events?since=0")
    assert any(e["kind"] == "sms" for e in events["events"])


def test_phone_call_dtmf_and_hangup(api):
    s, stub = api
    target = s.network.modules[0]
    code, _ = call(stub, "post", "/phones", {"number": "+15554001", "answer_after": None})
    assert code == 200
    code, rec = call(stub, "post", "/call", {"from": "+15554001", "to": target.sim.msisdn})
    assert code == 200 and rec["state"] == "setup"
    s.settle(1)
    assert target.calls and target.calls[0].state == 4
    code, body = call(stub, "post", "/dtmf", {"number": "+15554001", "digits": "12"})
    assert code == 400  # no active call yet
    target.voice.network.answer(target.calls[0].call)
    target.calls[0].state = 0
    code, _ = call(stub, "post", "/dtmf", {"number": "+15554001", "digits": "12"})
    assert code == 200
    s.settle(1)
    assert s.network.calls[-1].dtmf == ["1", "2"]
    code, _ = call(stub, "post", "/hangup", {"number": "+15554001"})
    assert code == 200 and s.network.calls[-1].state == "ended"
    code, body = call(stub, "get", "/calls")
    assert body["calls"][-1]["caller"] == "+15554001" and body["calls"][-1]["dtmf"] == "12"


def test_module_controls(api):
    s, stub = api
    m = s.network.modules[0]
    assert call(stub, "post", "/modules/1/signal", {"rssi": 5})[1]["rssi"] == 5
    call(stub, "post", "/modules/1/coverage", {"on": False})
    assert not m.registered
    call(stub, "post", "/modules/1/coverage", {"on": True})
    s.settle(3)
    assert m.registered
    call(stub, "post", "/modules/1/operator", {"plmn": "00102"})
    s.settle(3)
    assert m.serving == "00102"
    call(stub, "post", "/modules/1/slot", {"slot": 2})
    s.settle(4)
    assert m.active_slot == 2 and m.registered
    code, body = call(stub, "post", "/modules/1/fault", {"kind": "slow", "delay": 2})
    assert code == 200 and body["faults"]["delay"] == 2
    call(stub, "post", "/modules/1/fault", {"kind": "clear"})
    old = m.at_path
    call(stub, "post", "/modules/1/fault", {"kind": "replug"})
    assert m.plugged and m.at_path != old
    code, body = call(stub, "post", "/modules/2/sim", {"slot": 0, "remove": True})
    assert code == 200 and body["slots"][0] is None
    s.settle(1)
    assert not s.network.modules[1].registered
    code, body = call(stub, "post", "/modules/2/sim", {
        "slot": 0, "iccid": "8900100000000009999", "imsi": "001010000009999",
        "msisdn": "+12125550999"})
    assert body["slots"][0]["iccid"] == "8900100000000009999"
    s.settle(4)
    assert s.network.modules[1].registered
    assert s.network.sim_module("+12125550999") is s.network.modules[1]
    call(stub, "post", "/http", {"url": "http://x.test/", "status": 503})
    assert s.network.http_responses["http://x.test/"] == (503, "")
    assert call(stub, "post", "/modules/1/ussd", {"text": "hello"})[0] == 200


@pytest.mark.parametrize("path, body, field", [
    ("/sms", {"from": 1, "to": "+1", "text": "x"}, "from"),
    ("/sms", {"to": "+1", "text": "x"}, "from"),
    ("/phones", {"number": "+1", "audio": "music"}, "behaviour"),
    ("/phones", {"number": "+1", "colour": "red"}, "colour"),
    ("/modules/9/fault", {"kind": "slow"}, "module"),
    ("/modules/x/fault", {"kind": "slow"}, "module"),
    ("/modules/1/fault", {"kind": "explode"}, "value"),
    ("/modules/1/fault", {"kind": "slow", "delay": "soon"}, "value"),
    ("/modules/1/signal", {"rssi": 77}, "value"),
    ("/modules/1/signal", {"rssi": True}, "rssi"),
    ("/modules/1/slot", {"slot": 9}, "value"),
    ("/modules/1/operator", {"plmn": "99999"}, "value"),
    ("/modules/1/ussd", {"text": "x", "encoding": "ebcdic"}, "encoding"),
    ("/dtmf", {"number": "+1", "digits": "xyz"}, "digits"),
    ("/modules/1/sim", {"slot": 0, "iccid": "12", "imsi": "001010000000099",
                        "msisdn": "+1"}, "iccid"),
    ("/modules/1/sim", {"slot": 9, "remove": True}, "value"),
    ("/http", {"url": "http://x/", "status": 42}, "status"),
])
def test_bad_input_is_a_400_naming_the_field(api, path, body, field):
    s, stub = api
    code, reply = call(stub, "post", path, body)
    assert code == 400 and reply["field"] == field and reply["error"]


def test_not_json(api):
    s, stub = api
    d = stub.post("http://sim/sms", data=b"{nope")
    out = []
    d.addCallback(lambda r: treq.json_content(r).addCallback(lambda j: out.append((r.code, j))))
    stub.flush()
    assert out == [(400, {"error": "body is not JSON", "field": "body"})]


@pytest_twisted.inlineCallbacks
def test_control_over_real_tcp_on_loopback():
    from goip_tw.simulator import Network

    net = Network(reactor, reg_delay=0.1, boot_delay=0.05)
    net.add_module()
    net.start()
    port = listen_control(reactor, net, 0)
    try:
        assert port.getHost().host == "127.0.0.1"
        url = f"http://127.0.0.1:{port.getHost().port}/"
        response = yield treq.get(url, reactor=reactor)
        body = yield response.json()
        assert body["modules"][0]["at_path"] == net.modules[0].at_path
    finally:
        net.stop()
        yield port.stopListening()


def test_command_line_prints_paths_and_serves_control(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "goip_tw.simulator", "--modules", "2", "--slots", "2",
         "--control-port", "0", "--reg-delay", "0.1", "--link-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        lines = [proc.stdout.readline().strip() for _ in range(5)]
        assert lines[0].startswith("module 1 (quectel, IMEI ") and " at /dev/pts/" in lines[0]
        assert lines[2].startswith("echo test number: +")
        assert lines[3].startswith("sms echo number: +")
        port = int(lines[4].rsplit(":", 1)[1].strip("/"))
        assert os.path.islink(tmp_path / "module2-at")
        import urllib.request

        body = None
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    body = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        assert body and len(body["modules"]) == 2
        assert len(body["modules"][0]["slots"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_command_line_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, "-m", "goip_tw.simulator", "--modules", "0"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--modules must be 1..32" in proc.stderr


class FakeGateway:
    def __init__(self, reactor, data_dir, **simulator):
        import attrs

        from goip_tw.config.model import default_config

        cfg = default_config()
        self.config = attrs.evolve(cfg, simulator=attrs.evolve(cfg.simulator, **simulator))
        self.reactor = reactor
        self.data_dir = data_dir
        self.announced = []
        from goip_tw.events import EventBus

        self.events = EventBus()

    def announce(self, line):
        self.announced.append(line)


def test_gateway_service_embedded_default(tmp_path):
    from twisted.internet.testing import MemoryReactorClock

    from goip_tw.simulator.service import build_service

    r = MemoryReactorClock()
    gw = FakeGateway(r, str(tmp_path), reg_delay=0.5)
    seen = []
    gw.events.subscribe("*", lambda topic, **f: seen.append(topic))
    svc = build_service(gw)
    assert svc.name == "simulator"
    assert len(svc.network.modules) == 4
    assert all(len(m.slots) == 4 for m in svc.network.modules)
    assert svc.network.echo_number == "+12125550190"
    svc.startService()
    try:
        assert all(os.path.realpath(tmp_path / "sim-devices" / f"module{m.number}-at") ==
                   m.at_path for m in svc.network.modules)
        for _ in range(30):
            r.advance(0.1)
            pump(r)
        assert svc.health_state() == "4 simulated modules, 4 registered"
        assert "simulator.registered" in seen
    finally:
        svc.stopService()
    assert not [c for c in r.getDelayedCalls() if c.active()]
    assert build_service(FakeGateway(r, str(tmp_path), enabled="off")) is None


def test_gateway_service_control_port_is_announced(tmp_path):
    from twisted.internet.testing import MemoryReactorClock

    from goip_tw.simulator.service import build_service

    r = MemoryReactorClock()
    gw = FakeGateway(r, str(tmp_path), control_port=0, modules=1, dialect="mixed")
    svc = build_service(gw)
    svc.startService()
    try:
        assert r.tcpServers[0][0] == 0 and r.tcpServers[0][3] == "127.0.0.1"
        assert gw.announced and gw.announced[0].startswith("simulator control: http://127.0.0.1:")
    finally:
        svc.stopService()
