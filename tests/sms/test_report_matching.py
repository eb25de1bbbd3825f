"""Status reports around a restart: every ordering keeps the report for its part.

A report names its part only by line and 8-bit TP-MR (TS 23.040 §9.2.3.6), so the
queue must not lose one when it arrives before the part is recorded as sent, when
recovery records the part long after the module sent it, or when the TP-MR has
wrapped and a newer part carries the same reference.  Queue-level, time on a Clock.
"""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.sms.model import StatusReport, Submission
from goip_tw.sms.queue import LineGone, QueueSettings, SmsQueue
from tests.sms.fakes import FakeLine, settle


@pytest.fixture
def clock():
    c = Clock()
    c.advance(1_000_000)  # wall-clock-like times, so SCTS gaps are not near zero
    yield c
    assert [c for c in c.getDelayedCalls() if c.active()] == []


@defer.inlineCallbacks
def start_queue(store, clock, lines=()):
    q = SmsQueue(store, clock, settings=QueueSettings())
    for line in lines:
        q.add_line(line)
    yield q.startService()
    return q


def sub(text):
    return Submission(recipient="+15550001", text=text, source="test")


def report(mr, scts, delivered=True):
    return StatusReport(1, mr, delivered, status=0 if delivered else 0x41, scts=scts)


@defer.inlineCallbacks
def states(q, mid):
    info = yield q.info(mid)
    return info["state"], [p["state"] for p in info["part_rows"]]


@pytest_twisted.inlineCallbacks
def test_report_before_the_cmgs_answer_of_a_part_without_expected_mr_is_kept(store, clock):
    """A SIM that cannot tell its TP-MR leaves the claimed part without an expected
    reference; a report that overtakes the +CMGS answer waits for the part."""
    net = []
    l1 = FakeLine(1, net, knows_mr=False)
    l1.hold = True
    q = yield start_queue(store, clock, [l1])
    a = yield q.submit(sub("early"))
    yield settle(store, clock)
    assert (yield q.on_status_report(report(net[0][4], clock.seconds()))) is None
    l1.held.pop().callback(net[0][4])
    yield settle(store, clock)
    assert (yield states(q, a.message)) == ("delivered", ["delivered"])
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_early_report_published_when_the_last_part_is_recorded(store, clock):
    net = []
    l1 = FakeLine(1, net, knows_mr=False)
    l1.hold = True
    q = yield start_queue(store, clock, [l1])
    events = []
    q.subscribe(events.append)
    a = yield q.submit(sub("early and failed"))
    yield settle(store, clock)
    yield q.on_status_report(report(net[0][4], clock.seconds(), delivered=False))
    l1.held.pop().callback(net[0][4])
    yield settle(store, clock)
    assert (yield states(q, a.message)) == ("failed", ["failed"])
    assert [e.state.value for e in events if e.seq is None] == ["sent", "failed"]
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_stale_stored_report_does_not_settle_a_later_part(store, clock):
    """A report no part claimed when it came (a repeat, another sender's) must not
    settle a part that takes the same TP-MR later."""
    net = []
    l1 = FakeLine(1, net, knows_mr=False)
    q = yield start_queue(store, clock, [l1])
    assert (yield q.on_status_report(report(1, clock.seconds()))) is None
    clock.advance(30)
    a = yield q.submit(sub("later"))
    yield settle(store, clock)
    assert net[0][4] == 1
    assert (yield states(q, a.message)) == ("sent", ["sent"])
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_recovered_part_is_dated_by_its_claim_not_by_the_restart(store, clock):
    """The part left ``sending`` is recorded as sent by recovery 20 s after the
    module sent it; an older settled part with the same (wrapped) TP-MR must not
    swallow its report as a repeat."""
    net = []
    l1 = FakeLine(1, net)
    q = yield start_queue(store, clock, [l1])
    old = yield q.submit(sub("old"))
    yield settle(store, clock)
    yield q.on_status_report(report(net[0][4], clock.seconds()))
    clock.advance(5)
    l1.mr, l1.hold = 0, True  # wrapped; the module sends, its answer is lost
    a = yield q.submit(sub("new"))
    yield settle(store, clock)
    sent_a = clock.seconds()
    assert net[1][4] == net[0][4]
    q.stopService()  # crash
    clock.advance(20)
    q2 = yield start_queue(store, clock, [FakeLine(1, net, mr=l1.mr)])
    yield settle(store, clock)
    assert (yield states(q2, a.message)) == ("sent", ["sent"])
    yield q2.on_status_report(report(net[1][4], sent_a))  # drained after the recovery
    assert (yield states(q2, a.message)) == ("delivered", ["delivered"])
    assert (yield states(q2, old.message)) == ("delivered", ["delivered"])
    assert len(net) == 2
    q2.stopService()


@pytest_twisted.inlineCallbacks
def test_report_matched_to_a_newer_part_is_handed_on_by_that_part_s_own_report(store, clock):
    """Part 1 of a long message left before the crash, part 2 only after the restart;
    the network reports both parts once the message is whole (its SCTS is then) and
    by the time part 1's report is read the line has wrapped and sent a newer part
    with part 1's TP-MR, closer to that SCTS.  The newer part's own report, which
    differs from the one that settled it, then goes to the part still waiting."""
    net = []
    l1 = FakeLine(1, net)
    q = yield start_queue(store, clock, [l1])
    orig = l1.send_part

    def unplugged_at_part_2(recipient, text, concat, rep):
        if concat and concat[2] == 2:
            l1.ok = False
            return defer.fail(LineGone("unplugged"))
        return orig(recipient, text, concat, rep)
    l1.send_part = unplugged_at_part_2
    a = yield q.submit(sub("p" * 300))  # 2 parts
    yield settle(store, clock)
    assert [n[3][2] for n in net] == [1]
    q.stopService()  # crash
    clock.advance(10)
    l2 = FakeLine(1, net, mr=l1.mr)
    q2 = yield start_queue(store, clock, [l2])
    yield settle(store, clock)
    assert [n[3][2] for n in net] == [1, 2]  # part 2 resent after the restart
    whole_at = clock.seconds()
    mr1, mr2 = net[0][4], net[1][4]
    clock.advance(3)
    l2.mr = mr1 - 1  # the counter wrapped: a newer part takes part 1's TP-MR
    n = yield q2.submit(sub("newer"))
    yield settle(store, clock)
    assert net[2][4] == mr1
    yield q2.on_status_report(report(mr1, whole_at))  # closest: the newer part
    yield q2.on_status_report(report(mr2, whole_at))
    yield q2.on_status_report(report(mr1, clock.seconds()))  # the newer part's own
    assert (yield states(q2, a.message)) == ("delivered", ["delivered", "delivered"])
    assert (yield states(q2, n.message)) == ("delivered", ["delivered"])
    # The same reports read again from the SIM change nothing.
    for mr, at in ((mr1, whole_at), (mr2, whole_at), (mr1, clock.seconds())):
        assert (yield q2.on_status_report(report(mr, at, delivered=False))) is None
    assert (yield states(q2, a.message))[0] == "delivered"
    q2.stopService()


@pytest_twisted.inlineCallbacks
def test_report_drained_before_recovery_proves_the_part_left(store, clock):
    """Modules that keep TP-MR in their own memory leave EF_SMSS behind, so recovery
    would think the part never left; the report drained first proves it did and the
    part is never sent twice."""
    net = []
    l1 = FakeLine(1, net)
    l1.hold = True
    q = yield start_queue(store, clock, [l1])
    a = yield q.submit(sub("once"))
    yield settle(store, clock)
    q.stopService()  # crash: the +CMGS answer is lost
    q2 = yield start_queue(store, clock, [])
    yield q2.on_status_report(report(net[0][4], clock.seconds()))
    q2.add_line(FakeLine(1, net, mr=0))  # EF_SMSS still says 0
    yield settle(store, clock)
    assert len(net) == 1
    assert (yield states(q2, a.message)) == ("delivered", ["delivered"])
    q2.stopService()
