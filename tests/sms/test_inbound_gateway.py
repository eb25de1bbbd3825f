"""End to end in a real GatewayService (simulator, modems, sms, sms_inbound): an SMS
sent through the queue to the simulator's SMS-echo phone comes back, is stored once,
lands in the inbox and in an e-mail inbox (aiosmtpd on 127.0.0.1, STARTTLS + AUTH)."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from goip_tw.config.manager import ConfigManager
from goip_tw.gateway import GatewayService
from goip_tw.sms.model import Submission
from tests.modem.simhelp import wait_until
from tests.peers.smtp import SmtpSink

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SUBSYSTEMS = (
    ("simulator", "goip_tw.simulator.service"),
    ("modems", "goip_tw.modem.service"),
    ("sms", "goip_tw.sms.service"),
    ("sms_inbound", "goip_tw.sms.inbound_service"),
)


@pytest_twisted.inlineCallbacks
def test_echo_reply_reaches_inbox_and_email(tmp_path):
    from tests.sms.inbound_support import open_store

    # Migrate first: the queue's start-up read is not ordered behind the store's
    # migrations (reported to the lead and the queue engineer).
    (tmp_path / "data").mkdir()
    pre = yield open_store(tmp_path / "data" / "goip.sqlite")
    yield pre.stop()
    sink = SmtpSink(tmp_path, mode="starttls")
    sink.start()
    overrides = {
        "simulator": {"enabled": "on", "modules": 1, "slots": 1, "reg_delay": 0.05},
        "sms_inbound": {
            "email_to": ["owner@example.org"], "email_from": "gw@example.org",
            "smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_security": "starttls",
            "smtp_username": sink.username, "smtp_password": sink.password,
            "smtp_ca_file": str(sink.ca_path)},
    }
    manager = ConfigManager(str(tmp_path / "goip.toml"), overrides)
    gw = GatewayService(manager, str(tmp_path / "data"), reactor=reactor, subsystems=SUBSYSTEMS)
    gw.startService()
    try:
        inbound = gw.subsystem("sms_inbound")
        sms = gw.subsystem("sms")
        modems = gw.subsystem("modems")
        yield wait_until(lambda: modems.lines and modems.lines[0].state == "registered",
                         timeout=20, what="line 1 registered")
        yield sms.queue.ready
        echo = gw.config.simulator.sms_echo_number
        text = "ping 😀 über\r\nBcc: victim@example.com"
        yield sms.queue.submit(Submission(recipient=echo, text=text, source="web", line=1))
        yield wait_until(lambda: sink.messages, timeout=30, what="e-mail in the inbox")
        got = sink.messages[0]
        assert got["Subject"] == f"SMS from {echo} (L1)" and got["Bcc"] is None
        assert "ping 😀 über\nBcc: victim@example.com" in got.get_content().replace("\r\n", "\n")
        page = yield inbound.history.page("inbox", line=1)
        assert [(e.peer, e.text) for e in page.entries] == [(echo, text)]
        rows = yield gw.store.query("SELECT kind FROM sms_forward")
        assert [r[0] for r in rows] == ["email"]
    finally:
        yield defer.maybeDeferred(gw.stopService)
        sink.stop()


@pytest_twisted.inlineCallbacks
def test_sms_commands_from_a_simulated_phone(tmp_path):
    """REBOOT with the admin password restarts once (even though the phone's text
    is offered once more after a drain); ###INFO### gets a reply through the queue."""
    from tests.sms.inbound_support import open_store

    (tmp_path / "data").mkdir()
    pre = yield open_store(tmp_path / "data" / "goip.sqlite")
    yield pre.stop()
    overrides = {"simulator": {"enabled": "on", "modules": 1, "slots": 1, "reg_delay": 0.05},
                 "users": {"admin_password": "S3cret-pw"}}
    manager = ConfigManager(str(tmp_path / "goip.toml"), overrides)
    gw = GatewayService(manager, str(tmp_path / "data"), reactor=reactor, subsystems=SUBSYSTEMS)
    restarts = []
    gw.restart = lambda: restarts.append("restart")
    gw.startService()
    try:
        modems = gw.subsystem("modems")
        network = gw.subsystem("simulator").network
        yield wait_until(lambda: modems.lines and modems.lines[0].state == "registered",
                         timeout=20, what="line 1 registered")
        yield gw.subsystem("sms").queue.ready
        phone = network.add_remote_phone("+15550177")
        msisdn = network.modules[0].sim.msisdn
        phone.send_sms(msisdn, "reboot S3cret-pw")
        phone.send_sms(msisdn, "REBOOT wrong;reboot")
        phone.send_sms(msisdn, "###INFO###")
        yield wait_until(lambda: restarts and phone.received_sms, timeout=30,
                         what="restart and INFO reply")
        yield modems.lines[0].modem.drain_sms()
        assert restarts == ["restart"]
        assert phone.received_sms[0]["text"].startswith("IP: ")
        page = yield gw.subsystem("sms_inbound").history.page("inbox")
        assert sorted(e.text for e in page.entries) == sorted(
            ["REBOOT ********", "REBOOT ********", "###INFO###"])
    finally:
        yield defer.maybeDeferred(gw.stopService)


@pytest_twisted.inlineCallbacks
def test_own_number_by_sms_query_and_by_token_in_the_gateway(tmp_path):
    """F-510 methods 2 and 3 through real lines: the operator's service number answers
    a query; line 1 texts an encrypted SIM token to line 2, which learns line 1's
    number. Both numbers are stored by ICCID."""
    from tests.sms.inbound_support import open_store

    (tmp_path / "data").mkdir()
    pre = yield open_store(tmp_path / "data" / "goip.sqlite")
    yield pre.stop()
    overrides = {"simulator": {"enabled": "on", "modules": 2, "slots": 1, "reg_delay": 0.05}}
    manager = ConfigManager(str(tmp_path / "goip.toml"), overrides)
    gw = GatewayService(manager, str(tmp_path / "data"), reactor=reactor, subsystems=SUBSYSTEMS)
    gw.startService()
    try:
        modems = gw.subsystem("modems")
        network = gw.subsystem("simulator").network
        yield wait_until(lambda: len(modems.lines) == 2 and all(
            ln.state == "registered" for ln in modems.lines), timeout=20, what="lines up")
        yield gw.subsystem("sms").queue.ready
        sim1, sim2 = (m.sim for m in network.modules)
        network.add_remote_phone("10086", sms_reply=f"您的号码是{sim1.msisdn},谢谢")
        own = gw.subsystem("sms_inbound").own_numbers
        number = yield own.discover_by_sms(1, sim1.iccid, "10086", "CXHM",
                                           reply_from="10086", phrase="您的号码是")
        assert number.lstrip("+") == sim1.msisdn.lstrip("+")
        learned = yield own.discover_by_token(2, sim2.iccid, sim1.msisdn)
        assert learned.lstrip("+") == sim2.msisdn.lstrip("+")
        rows = yield own.known()
        assert {(r["iccid"], r["method"]) for r in rows} == {(sim1.iccid, "sms"),
                                                             (sim2.iccid, "token")}
        page = yield gw.subsystem("sms_inbound").history.page("inbox")
        assert "[own-number token]" in [e.text for e in page.entries]
    finally:
        yield defer.maybeDeferred(gw.stopService)
