"""F-1801 SMS via SIP MESSAGE: target, line, result reports (queue + store real, SIP faked)."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from goip_tw.sip.ua import InboundMessage
from goip_tw.sms.queue import QueueSettings, SmsQueue
from goip_tw.sms.router import Router
from goip_tw.sms.sip_message import SipMessageRelay, split_target
from tests.sms.fakes import FakeLine, cms, make_store, settle


class FakeSip:
    def __init__(self):
        self.sent = []

    def send_message(self, target, body, *, from_user=None, content_type="", line=None):
        self.sent.append((target, body.decode(), line))
        return defer.succeed(200)


@pytest.fixture
def env(tmp_path, monkeypatch):
    store = make_store(tmp_path / "m.sqlite", reactor, monkeypatch)
    clock = Clock()
    net = []
    lines = [FakeLine(1, net), FakeLine(2, net)]
    router = Router.from_settings(prefixes={2: ("77",)}, match_caller=True)
    queue = SmsQueue(store, clock, router, QueueSettings(retries=0))
    for line in lines:
        queue.add_line(line)
    pytest_twisted.blockon(queue.startService())
    sip = FakeSip()
    yield store, clock, queue, sip, net, lines
    queue.stopService()
    pytest_twisted.blockon(store.stop())


def message(body, recipient="gw", sender="101", account="main", ctype="text/plain"):
    return InboundMessage(sender=sender, recipient=recipient, body=body.encode(),
                          content_type=ctype, call_id="abc123@10.0.0.1", identity="user:101",
                          account=account, source=("127.0.0.1", 5062))


def test_split_target():
    assert split_target("+4915551\nhello\nworld", "gw") == ("+4915551", "hello\nworld")
    assert split_target("hello", "+4915551") == ("+4915551", "hello")
    assert split_target("not a number\nx", "555123") == ("555123", "not a number\nx")


@pytest_twisted.inlineCallbacks
def test_first_line_target_and_relay_ok(env):
    store, clock, queue, sip, net, lines = env
    relay = SipMessageRelay(queue, sip)
    code = yield relay.message_received(message("+4915551\nHallo 😀"))
    assert code == 202
    yield settle(store, clock)
    relay.close()
    assert [(n[1], n[2]) for n in net] == [("+4915551", "Hallo 😀")]
    assert ("101@127.0.0.1:5062", "SMS(callid:abc123) RELAY OK", None) in sip.sent


@pytest_twisted.inlineCallbacks
def test_to_user_target_line_account_and_prefix(env):
    store, clock, queue, sip, net, lines = env
    relay = SipMessageRelay(queue, sip)
    yield relay.message_received(message("one", recipient="4915551", account="line2"))
    yield relay.message_received(message("two", recipient="7712345"))
    yield relay.message_received(message("three", recipient="5550000", sender="77101"))
    relay.close()
    yield settle(store, clock)
    assert sorted((n[2], n[0]) for n in net) == [("one", 2), ("three", 2), ("two", 2)]


@pytest_twisted.inlineCallbacks
def test_errors(env):
    store, clock, queue, sip, net, lines = env
    relay = SipMessageRelay(queue, sip, report=True)
    assert (yield relay.message_received(message("x", ctype="application/json"))) == 415
    assert (yield relay.message_received(message("hi", recipient="abc"))) == 404
    assert sip.sent[-1][1] == "SMS(callid:abc123) RELAY ERROR:404"
    lines[0].errors = [cms(500)]
    queue.remove_line(2)
    assert (yield relay.message_received(message("+4915551\nfails"))) == 202
    yield settle(store, clock)
    relay.close()
    assert sip.sent[-1][1] == "SMS(callid:abc123) RELAY ERROR:500"
