"""F-497 forward to a mobile number through the real outgoing queue."""

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from zope.interface import implementer

from goip_tw.sms.forward import ForwardJob, ForwardRules, Forwarder, mobile_sender
from goip_tw.sms.inbound import InboundSms
from goip_tw.sms.queue import ISmsLine, SmsQueue
from tests.sms.fakes import settle
from tests.sms.inbound_support import part, store  # noqa: F401


@implementer(ISmsLine)
class FakeLine:
    def __init__(self, number):
        self.number = number
        self.sent = []

    def can_send(self):
        return True

    def send_part(self, recipient, text, concat, report):
        self.sent.append((recipient, text, concat))
        return defer.succeed(len(self.sent))

    def last_used_mr(self):
        return defer.succeed(len(self.sent))


@pytest_twisted.inlineCallbacks
def test_forward_reaches_the_queue_in_manual_format(store):
    clock = Clock()
    queue = SmsQueue(store, clock)
    yield queue.startService()
    line = FakeLine(2)
    queue.add_line(line)
    fwd = Forwarder(store, clock, ForwardRules(mobile_number="+8613800000000"),
                    {"mobile": mobile_sender(queue, store)})
    inbound = InboundSms(store, clock, planner=fwd)
    yield fwd.start()
    yield inbound.part_received(part("你好", line=1))
    yield settle(store, clock)
    assert [(r, t) for r, t, _ in line.sent] == [("+8613800000000", "L1,+8613670128297>你好")]
    rows = yield store.query("SELECT state FROM sms_forward")
    assert [r[0] for r in rows] == ["done"]
    fwd.stop()
    yield queue.stopService()


@pytest_twisted.inlineCallbacks
def test_resubmission_after_crash_is_not_a_second_sms(store):
    clock = Clock()
    queue = SmsQueue(store, clock)
    yield queue.startService()
    send = mobile_sender(queue, store)
    job = ForwardJob(id=41, history_id=1, kind="mobile", target="+8613800000000",
                     sender="+1", line=1, text="t", received_at=0.0)
    first = yield send(job)
    again = yield send(job)  # the job row was not marked done before a crash
    rows = yield store.query("SELECT id FROM sms_message WHERE source_ref = 'fwd:41'")
    assert len(rows) == 1 and again == rows[0][0] and first.message == rows[0][0]
    yield queue.stopService()


@pytest_twisted.inlineCallbacks
def test_a_forwarded_sms_is_not_forwarded_by_sms_again(store):
    """Forward number = one of our own SIMs: L1,A>x arrives on line 2 and would go
    out as L2,...>L1,A>x forever. It still goes to SIP/e-mail."""
    from twisted.internet.task import Clock

    clock, sent = Clock(), []
    fwd = Forwarder(store, clock, ForwardRules(mobile_number="+1", sip_target="101"),
                    {"mobile": lambda job: sent.append(job.kind) or defer.succeed(1),
                     "sip": lambda job: sent.append(job.kind) or defer.succeed(200)})
    inbound = InboundSms(store, clock, planner=fwd)
    yield fwd.start()
    yield inbound.part_received(part("L1,+8613670128297>你好", line=2))
    clock.advance(0)
    assert sent == ["sip"]
    fwd.stop()
