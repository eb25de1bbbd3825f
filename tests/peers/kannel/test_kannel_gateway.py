"""Issue 8 "done when", in one real GatewayService on the simulator: a 3-part UCS2
message submitted through Kannel reaches the simulated echo phone, its delivery
receipt comes back to Kannel (DLR callback), and the phone's reply reaches Kannel's
sms-service and an e-mail inbox (aiosmtpd, STARTTLS)."""

from urllib.parse import quote

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.server import Site

from goip_tw.config.manager import ConfigManager
from goip_tw.gateway import GatewayService
from tests.peers.kannel.test_kannel import Kannel, Recorder, free_port, pytestmark  # noqa: F401
from tests.peers.kannel.test_kannel import wait_for
from tests.peers.smtp import SmtpSink

pytestmark = [pytestmark, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]

SUBSYSTEMS = (
    ("simulator", "goip_tw.simulator.service"),
    ("modems", "goip_tw.modem.service"),
    ("sms", "goip_tw.sms.service"),
    ("sms_inbound", "goip_tw.sms.inbound_service"),
    ("smpp", "goip_tw.smpp.service"),
)


@pytest_twisted.inlineCallbacks
def test_kannel_to_simulated_phone_and_back(tmp_path):
    sink = SmtpSink(tmp_path, mode="starttls")
    sink.start()
    smpp_port = free_port()
    overrides = {
        "simulator": {"enabled": "on", "modules": 2, "slots": 1, "reg_delay": 0.05},
        "smpp": {"enabled": "on", "port": smpp_port, "interface": "127.0.0.1",
                 "system_id": "1", "password": "kpass"},
        "sms_inbound": {
            "email_to": ["owner@example.org"], "email_from": "gw@example.org",
            "smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_security": "starttls",
            "smtp_username": sink.username, "smtp_password": sink.password,
            "smtp_ca_file": str(sink.ca_path)},
    }
    manager = ConfigManager(str(tmp_path / "goip.toml"), overrides)
    gw = GatewayService(manager, str(tmp_path / "data"), reactor=reactor, subsystems=SUBSYSTEMS)
    recorder = Recorder()
    web = reactor.listenTCP(0, Site(recorder), interface="127.0.0.1")
    kdir = tmp_path / "kannel"
    kdir.mkdir()
    kannel = Kannel(kdir, smpp_port, web.getHost().port, "1", "kpass")
    gw.startService()
    try:
        modems = gw.subsystem("modems")
        yield wait_for(lambda: modems.lines and all(ln.state == "registered"
                                                    for ln in modems.lines), 30, "lines")
        kannel.start()
        backend = gw.subsystem("smpp").backend
        yield wait_for(lambda: backend.sessions, 30, "kannel to bind")
        echo = gw.config.simulator.sms_echo_number
        text = "Grüße aus Kannel 😀 " * 8  # 168 UTF-16 units: 3 UCS2 parts
        http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        dlr_url = f"http://127.0.0.1:{web.getHost().port}/dlr?s=%d&id=%F"
        r = yield http.get(f"{kannel.sendsms}?username=tester&password=testpw&from=goiptest"
                           f"&to={quote(echo)}&charset=UTF-8&coding=2&dlr-mask=3"
                           f"&dlr-url={quote(dlr_url, safe='')}&text={quote(text)}")
        assert r.code == 202, (yield r.text())
        # the reply from the phone reaches Kannel's sms-service ...
        yield wait_for(lambda: any(p == "/mo" for p, _ in recorder.hits), 60, "reply at Kannel")
        mo = next(h for p, h in recorder.hits if p == "/mo")
        raw = mo["text"][0].encode("latin-1")
        got = raw.decode("utf-16-be") if mo["coding"] == ["2"] else raw.decode("utf-8")
        assert mo["from"] == [echo] and got == text
        # ... and the e-mail inbox
        yield wait_for(lambda: sink.messages, 60, "e-mail")
        assert "Grüße aus Kannel 😀" in sink.messages[0].get_content()
        # The delivery receipt comes back to Kannel as one DLR for the whole 3-part
        # message (1 = delivered): the simulated network reports every part (TS 23.040
        # 9.2.3.5), the gateway combines them and answers each id Kannel asked about.
        yield wait_for(lambda: any(p == "/dlr" and h["s"] == ["1"] for p, h in recorder.hits),
                       60, "delivered DLR at Kannel")
        rows = yield gw.store.query("SELECT id, parts, state FROM sms_message ORDER BY id")
        assert [(r["parts"], r["state"]) for r in rows] == [(3, "delivered")]
        parts = yield gw.store.query("SELECT state FROM sms_part ORDER BY seq")
        assert [r["state"] for r in parts] == ["delivered"] * 3
        final = [h for p, h in recorder.hits if p == "/dlr" and h["s"] in (["1"], ["2"])]
        assert [h["s"] for h in final] == [["1"]]
        assert final[0]["id"][0].split(".")[0] == str(rows[0]["id"])
    finally:
        kannel.stop()
        yield defer.maybeDeferred(gw.stopService)
        yield web.stopListening()
        sink.stop()
