"""The sms_inbound service wired the way gateway.py builds it: a line's received SMS
goes to the store, the "sms" fan-out and a SIP forward; commands reach the
gateway's hooks; reconfig applies new forwarding rules."""

import datetime

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.config.files import parse
from goip_tw.modem.model import IncomingSms
from goip_tw.sms.inbound_service import InboundService, load_secret
from tests.sms.inbound_support import Recorder, flush, history, store  # noqa: F401


class FakeSip:
    def __init__(self):
        self.sent = []

    def send_message(self, target, body, *, from_user=None,
                     content_type="text/plain;charset=UTF-8", line=None):
        self.sent.append((target, body, from_user))
        return defer.succeed(200)


class FakeSmsService(Recorder):
    queue = None


class FakeLine:
    def __init__(self, number):
        self.number = number
        self.observers = []
        self.sms_handler = None
        self.sim_slot = 1
        self.modem = type("M", (), {"sim": type("S", (), {"iccid": "8986000001"})()})()


    def add_observer(self, fn):
        self.observers.append(fn)

    def remove_observer(self, fn):
        self.observers.remove(fn)


class FakeModems:
    def __init__(self, n):
        self.lines = [FakeLine(i + 1) for i in range(n)]

    def line(self, number):
        return self.lines[number - 1] if 0 < number <= len(self.lines) else None


class FakeGateway:
    def __init__(self, store, tmp_path, config):
        self.store = store
        self.reactor = Clock()
        self.data_dir = str(tmp_path)
        self.config = config
        self.subs = {"sip": FakeSip(), "sms": FakeSmsService(), "modems": FakeModems(2)}
        self.hooks = []
        from goip_tw.events import EventBus

        self.events = EventBus()
        self.published = []
        self.events.subscribe("*", lambda topic, **f: self.published.append((topic, f)))

    def subsystem(self, name):
        return self.subs.get(name)

    def factory_reset(self):
        self.hooks.append("factory_reset")

    def restart(self):
        self.hooks.append("restart")


def sms(text, key):
    return IncomingSms(sender="+8613670128297", text=text,
                       timestamp=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
                       smsc=None, encoding="gsm7", data=None, parts=1, missing=(),
                       imsi="460001", dedupe_key=key)


CONFIG = {"users": {"admin_password": "Adm1n"},
          "sms_inbound": {"forward_sip_target": "sip:101@127.0.0.1:5070"}}


@pytest_twisted.inlineCallbacks
def test_line_sms_is_stored_fanned_out_and_forwarded(store, tmp_path):
    gw = FakeGateway(store, tmp_path, parse(CONFIG))
    svc = InboundService(gw, info_text=lambda: "IP 127.0.0.1")
    yield svc.startService()
    line2 = gw.subs["modems"].lines[1]
    assert line2.sms_handler == svc.line_sms_handler
    yield line2.sms_handler(2, sms("hello", "k1"))
    yield line2.sms_handler(2, sms("hello", "k1"))  # re-read after a crash: dropped
    gw.reactor.advance(0)
    yield flush(store)
    assert [(m.line, m.text, m.iccid, m.slot) for m in gw.subs["sms"].messages] == [
        (2, "hello", "8986000001", "B")]
    assert gw.subs["sip"].sent == [("sip:101@127.0.0.1:5070",
                                    b"+8613670128297\n(L2)hello", None)]
    assert [(t, f["line"], f["sender"]) for t, f in gw.published] == [
        ("sms.received", 2, "+8613670128297")]
    yield line2.sms_handler(2, sms("REBOOT Adm1n", "k2"))
    yield line2.sms_handler(2, sms("RESET wrong", "k3"))
    gw.reactor.advance(0)
    assert gw.hooks == ["restart"]
    rows = yield history(store)
    assert [r["text"] for r in rows] == ["hello", "REBOOT ********", "RESET ********"]
    from goip_tw.modem.model import UssdNotification, UssdReply

    for fn in line2.observers:
        fn(UssdNotification(UssdReply(1, "Accept offer? 1=yes")))
    assert svc.ussd.state(2).session_open
    assert gw.published[-1] == ("ussd.result", {"line": 2, "status": "open",
                                                "text": "Accept offer? 1=yes", "error": ""})
    svc.stopService()
    assert line2.sms_handler is None and line2.observers == []
    assert gw.reactor.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_reconfig_switches_forwarding_off(store, tmp_path):
    from goip_tw.config.schema import diff

    old = parse(CONFIG)
    gw = FakeGateway(store, tmp_path, old)
    svc = InboundService(gw)
    yield svc.startService()
    new = parse({**CONFIG, "sms_inbound": {"forward_sip_target": ""}})
    gw.config = new
    svc.reconfig(old, new, diff(old, new))
    yield gw.subs["modems"].lines[0].sms_handler(1, sms("quiet", "k9"))
    gw.reactor.advance(0)
    assert gw.subs["sip"].sent == []
    svc.stopService()


def test_secret_is_created_once_and_private(tmp_path):
    import os
    import stat

    a = load_secret(str(tmp_path))
    assert load_secret(str(tmp_path)) == a and len(a) == 32
    mode = os.stat(tmp_path / "own-number.key").st_mode
    assert stat.S_IMODE(mode) == 0o600
