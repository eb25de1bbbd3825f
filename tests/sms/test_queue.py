"""The durable queue against a real SQLite store, time on a Clock, lines faked."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.sms import repository as repo
from goip_tw.sms.model import State, StatusReport, Submission
from goip_tw.sms.queue import LineGone, QueueFull, QueueSettings, SmsQueue
from goip_tw.sms.router import RouteError, Router
from tests.sms.fakes import FakeLine, cms, settle


@pytest.fixture
def clock():
    c = Clock()
    yield c
    assert [c for c in c.getDelayedCalls() if c.active()] == []


@defer.inlineCallbacks
def start_queue(store, clock, lines=(), **kw):
    router = kw.pop("router", None)
    q = SmsQueue(store, clock, router=router, settings=QueueSettings(**kw))
    for line in lines:
        q.add_line(line)
    yield q.startService()
    return q


def sub(text="hello", to="+15550001", **kw):
    return Submission(recipient=to, text=text, source=kw.pop("source", "test"), **kw)


@pytest_twisted.inlineCallbacks
def test_accepted_only_after_commit_then_sent(store, clock):
    net = []
    q = yield start_queue(store, clock, [FakeLine(1, net)])
    events = []
    q.subscribe(events.append)
    acc = yield q.submit(sub())
    # The acknowledgment means the row is readable by another connection.
    stored = yield store.query("SELECT state, dest, parts FROM sms_message WHERE id = ?",
                               (acc.message,))
    assert stored[0]["parts"] == 1
    yield settle(store, clock)
    assert net == [(1, "+15550001", "hello", None, 1)]
    msg = yield store.read(repo.message_info, acc.message)
    assert msg["state"] == "sent" and msg["sent_line"] == 1
    assert msg["part_rows"][0]["mr"] == 1
    hist = yield store.read(repo.history_page, "out", 1)
    assert [h["peer"] for h in hist] == ["+15550001"]
    assert [e.state for e in events] == [State.SENT]
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_long_text_split_once_same_line_counted_once(store, clock):
    net = []
    q = yield start_queue(store, clock, [FakeLine(1, net), FakeLine(2, net)])
    text = "x" * 400  # 3 GSM7 parts of 153 septets
    acc = yield q.submit(sub(text))
    assert acc.parts == 3
    yield settle(store, clock)
    assert [n[0] for n in net] == [1, 1, 1]
    assert [n[3] for n in net] == [(acc.message % 256, 3, s) for s in (1, 2, 3)]
    assert "".join(n[2] for n in net) == text
    hist = yield store.read(repo.history_page, "out")
    assert len(hist) == 1 and hist[0]["parts"] == 3
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_reports_combined_over_parts(store, clock):
    net = []
    q = yield start_queue(store, clock, [FakeLine(1, net)])
    events = []
    q.subscribe(events.append)
    a = yield q.submit(sub("y" * 200))  # 2 parts
    b = yield q.submit(sub("z" * 200))
    yield settle(store, clock)
    mrs = {(n[2][0], n[3][2]): n[4] for n in net}
    yield q.on_status_report(StatusReport(1, mrs[("y", 1)], True))
    info = yield q.info(a.message)
    assert info["state"] == "sent"
    yield q.on_status_report(StatusReport(1, mrs[("y", 2)], True))
    yield q.on_status_report(StatusReport(1, mrs[("z", 1)], True))
    yield q.on_status_report(StatusReport(1, mrs[("z", 2)], False, status=0x41))
    assert (yield q.info(a.message))["state"] == "delivered"
    assert (yield q.info(b.message))["state"] == "failed"
    finals = [(e.message, e.state) for e in events if e.seq is None and e.state.final]
    assert finals == [(a.message, State.DELIVERED), (b.message, State.FAILED)]
    # An unknown reference changes nothing.
    assert (yield q.on_status_report(StatusReport(1, 200, True))) is None
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_min_interval_per_line(store, clock):
    net = []
    q = yield start_queue(store, clock, [FakeLine(1, net), FakeLine(2, net)], interval=10)
    for i in range(5):
        yield q.submit(sub(f"m{i}"))
    yield settle(store, clock)
    assert sorted(n[0] for n in net) == [1, 2]
    clock.advance(9)
    yield settle(store, clock)
    assert len(net) == 2
    clock.advance(1)
    yield settle(store, clock)
    assert len(net) == 4
    clock.advance(10)
    yield settle(store, clock)
    assert len(net) == 5
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_retry_backoff_then_failover(store, clock):
    net = []
    l1, l2 = FakeLine(1, net), FakeLine(2, net)
    l1.errors = [cms(500), cms(500), cms(500)]
    q = yield start_queue(store, clock, [l1], retries=2, backoff=5)
    acc = yield q.submit(sub())
    yield settle(store, clock)
    assert net == [] and len(l1.errors) == 2
    clock.advance(5)
    yield settle(store, clock)
    assert len(l1.errors) == 1
    l2.ok = False  # present (so failover has somewhere to go) but busy for now
    q.add_line(l2)
    clock.advance(9)  # second back-off is 10 s
    yield settle(store, clock)
    assert len(l1.errors) == 1
    clock.advance(1)
    yield settle(store, clock)
    assert l1.errors == [] and net == []
    l2.ok = True
    q.line_changed()
    yield settle(store, clock)
    assert [n[0] for n in net] == [2]
    info = yield q.info(acc.message)
    assert info["state"] == "sent" and info["tried_lines"] == "1"
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_permanent_error_and_exhausted_lines_fail(store, clock):
    net = []
    l1 = FakeLine(1, net)
    l1.errors = [cms(304)]
    q = yield start_queue(store, clock, [l1], retries=0)
    events = []
    q.subscribe(events.append)
    a = yield q.submit(sub())
    yield settle(store, clock)
    assert (yield q.info(a.message))["state"] == "failed"
    l1.errors = [cms(500)]
    b = yield q.submit(sub())
    yield settle(store, clock)
    info = yield q.info(b.message)
    assert info["state"] == "failed" and "500" in info["error"]
    assert [e.state for e in events] == [State.FAILED, State.FAILED]
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_expiry_and_cancel(store, clock):
    net = []
    l1 = FakeLine(1, net)
    l1.ok = False
    q = yield start_queue(store, clock, [l1], sweep_interval=30)
    a = yield q.submit(sub(validity=20))
    b = yield q.submit(sub())
    assert (yield q.cancel(b.message)) is True
    clock.advance(30)
    yield settle(store, clock)
    assert (yield q.info(a.message))["state"] == "expired"
    assert (yield q.info(b.message))["state"] == "cancelled"
    l1.ok = True
    q.line_changed()
    yield settle(store, clock)
    assert net == []
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_prefix_routing_and_rewrite(store, clock):
    net = []
    router = Router.from_settings("00:-00++|0:-0++44", prefixes={1: ("9",), 2: ("8",)},
                                  strip_prefix=True)
    q = yield start_queue(store, clock, [FakeLine(1, net), FakeLine(2, net)], router=router)
    yield q.submit(sub(to="80712345678"))
    yield q.submit(sub(to="9004915551"))
    yield settle(store, clock)
    assert sorted((n[0], n[1]) for n in net) == [(1, "+4915551"), (2, "+44712345678")]
    with pytest.raises(RouteError):
        yield q.submit(sub(to="hello"))
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_queue_bound(store, clock):
    q = yield start_queue(store, clock, [], max_queued=2)
    yield q.submit(sub())
    yield q.submit(sub())
    with pytest.raises(QueueFull):
        yield q.submit(sub())
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_client_fragments_become_one_message(store, clock):
    net = []
    q = yield start_queue(store, clock, [FakeLine(1, net)])
    ids = []
    for seq, t in ((2, "b"), (1, "a"), (3, "c")):
        acc = yield q.submit(sub(t, fragment=(7, 3, seq), source_ref="esme"))
        ids.append(acc.message_id)
    mid = int(ids[0].split(".")[0])
    assert ids == [f"{mid}.2", f"{mid}.1", f"{mid}.3"]
    yield settle(store, clock)
    assert [n[2] for n in net] == ["a", "b", "c"]
    assert q.accepted == 1
    info = yield q.info(mid)
    assert info["text"] == "abc" and info["state"] == "sent"
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_fragment_assembly_timeout_sends_what_arrived(store, clock):
    net = []
    q = yield start_queue(store, clock, [FakeLine(1, net)], assembly_timeout=60)
    yield q.submit(sub("a", fragment=(1, 2, 1)))
    clock.advance(60)
    yield settle(store, clock)
    assert [n[2] for n in net] == ["a"]
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_restart_resolves_unconfirmed_part_by_tp_mr(store, clock):
    """A part handed to the module just before a crash is never sent twice."""
    net = []
    l1 = FakeLine(1, net)
    l1.hold = True  # the module sends, but its +CMGS answer never reaches us
    q = yield start_queue(store, clock, [l1])
    a = yield q.submit(sub("p" * 300))  # 2 parts
    yield settle(store, clock)
    assert len(net) == 1
    q.stopService()  # "crash": the held answer is lost
    q2 = yield start_queue(store, clock, [])
    l1b = FakeLine(1, net, mr=l1.mr)
    q2.add_line(l1b)
    yield settle(store, clock)
    assert [n[3][2] for n in net] == [1, 2]
    info = yield q2.info(a.message)
    assert info["state"] == "sent" and [p["mr"] for p in info["part_rows"]] == [1, 2]
    q2.stopService()


@pytest_twisted.inlineCallbacks
def test_restart_requeues_part_the_module_never_sent(store, clock):
    net = []
    l1 = FakeLine(1, net)
    l1.errors = [LineGone("unplugged")]
    q = yield start_queue(store, clock, [l1])
    a = yield q.submit(sub())
    yield settle(store, clock)
    assert net == []
    q.stopService()
    q2 = yield start_queue(store, clock, [FakeLine(1, net, mr=l1.mr)])
    yield settle(store, clock)
    assert len(net) == 1
    assert (yield q2.info(a.message))["state"] == "sent"
    q2.stopService()


@pytest_twisted.inlineCallbacks
def test_module_back_after_unplug_resolves_without_restart(store, clock):
    net = []
    l1 = FakeLine(1, net)
    l1.errors = [LineGone("unplugged")]
    q = yield start_queue(store, clock, [l1])
    a = yield q.submit(sub())
    yield settle(store, clock)
    assert net == []
    l1.ok = True  # plugged in again
    q.line_changed()
    yield settle(store, clock)
    assert len(net) == 1
    assert (yield q.info(a.message))["state"] == "sent"
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_unknown_tp_mr_is_never_resent_by_default(store, clock):
    net = []
    l1 = FakeLine(1, net, knows_mr=False)
    l1.hold = True
    q = yield start_queue(store, clock, [l1])
    a = yield q.submit(sub())
    yield settle(store, clock)
    q.stopService()
    q2 = yield start_queue(store, clock, [FakeLine(1, net, knows_mr=False)])
    yield settle(store, clock)
    assert len(net) == 1
    assert (yield q2.info(a.message))["state"] == "sent"
    q2.stopService()


def test_service_reconfig_applies_routing(tmp_path):
    """SmsService.reconfig swaps router and settings without a restart."""
    import attrs

    from goip_tw.config.sections.sms import SmsConfig
    from goip_tw.sms.service import SmsService

    class Gw:
        store = None
        reactor = Clock()
        config = type("C", (), {"sms": SmsConfig(http_api=False)})()

        def subsystem(self, name):
            return None

    svc = SmsService(Gw())
    new = type("C", (), {"sms": attrs.evolve(SmsConfig(), interval=7.0, rewrite_rules="0:-0++44",
                                             line_prefixes=("9",))})()
    svc.reconfig(Gw.config, new, {"sms.interval", "sms.rewrite_rules", "sms.line_prefixes"})
    assert svc.queue.settings.interval == 7.0
    assert svc.queue.router.route("0712345").dest == "+44712345"
    assert svc.queue.router.route("912345").lines == (1,)


@pytest_twisted.inlineCallbacks
def test_deep_queue_for_a_blocked_line_does_not_starve_others(store, clock):
    net = []
    l1, l2 = FakeLine(1, net), FakeLine(2, net)
    l2.ok = False  # e.g. its SIM reached its SMS limit
    q = yield start_queue(store, clock, [l1, l2])
    for i in range(30):
        yield q.submit(sub(f"for line 2 #{i}", line=2))
    yield q.submit(sub("any line"))
    yield settle(store, clock)
    assert [(n[0], n[2]) for n in net] == [(1, "any line")]
    assert q.depth == 30
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_fragment_too_long_for_one_part_is_refused(store, clock):
    from goip_tw.sms.model import EncodeError

    q = yield start_queue(store, clock, [])
    with pytest.raises(EncodeError):
        yield q.submit(sub("x" * 154, fragment=(1, 2, 1)))
    yield q.submit(sub("x" * 153, fragment=(1, 2, 1)))
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_resend_policy_sends_again_when_the_sim_cannot_tell(store, clock):
    net = []
    l1 = FakeLine(1, net, knows_mr=False)
    l1.hold = True
    q = yield start_queue(store, clock, [l1])
    yield q.submit(sub())
    yield settle(store, clock)
    q.stopService()
    q2 = yield start_queue(store, clock, [FakeLine(1, net, knows_mr=False)],
                           uncertain_policy="resend")
    yield settle(store, clock)
    assert len(net) == 2  # never lost, possibly twice: the operator's choice
    q2.stopService()


def test_voip_line_prefixes_route_sms_when_sms_has_none():
    from goip_tw.config.sections.sms import SmsConfig
    from goip_tw.config.sections.voip import SipAccount, SipGroup, VoipConfig
    from goip_tw.sms.service import router_from_config

    voip = VoipConfig(mode="line", lines=(SipAccount(auth_id="a", prefixes="81"),
                                          SipAccount(auth_id="b", prefixes="82,83")),
                      strip_prefix=True)
    r = router_from_config(SmsConfig(), voip)
    assert r.route("830711").lines == (2,) and r.route("830711").dest == "0711"
    groups = VoipConfig(mode="group", groups=(SipGroup(name="g", lines=(3, 4),
                                                       account=SipAccount(prefixes="9")),))
    assert router_from_config(SmsConfig(), groups).route("9123").lines == (3, 4)
    own = router_from_config(SmsConfig(line_prefixes=("5",)), voip)
    assert own.route("5123").lines == (1,)


@pytest_twisted.inlineCallbacks
def test_half_sent_message_resumes_on_its_line_after_restart(store, clock):
    net = []
    l1 = FakeLine(1, net)
    q = yield start_queue(store, clock, [l1], retries=5, backoff=100)
    a = yield q.submit(sub("h" * 300))  # 2 parts
    yield settle(store, clock)
    assert len(net) == 2
    b = yield q.submit(sub("k" * 300))
    # part 1 leaves, part 2 meets a +CMS ERROR: requeued, bound to line 1
    orig = l1.send_part
    calls = []

    def flaky(recipient, text, concat, report):
        calls.append(concat)
        if concat and concat[2] == 2:
            return defer.fail(cms(500))
        return orig(recipient, text, concat, report)
    l1.send_part = flaky
    yield settle(store, clock)
    q.stopService()
    q2 = yield start_queue(store, clock, [FakeLine(2, net), FakeLine(1, net, mr=l1.mr)])
    yield settle(store, clock)
    sent_b = [(n[0], n[3][2]) for n in net if n[2].startswith("k")]
    assert sent_b == [(1, 1), (1, 2)]
    assert (yield q2.info(b.message))["state"] == "sent"
    assert (yield q2.info(a.message))["state"] == "sent"
    q2.stopService()


@pytest_twisted.inlineCallbacks
def test_scheduled_delivery_waits_and_survives_restart(store, clock):
    net = []
    q = yield start_queue(store, clock, [FakeLine(1, net)])
    yield q.submit(sub("later", delay=60))
    yield settle(store, clock)
    assert net == []
    q.stopService()
    q2 = yield start_queue(store, clock, [FakeLine(1, net)])
    clock.advance(59)
    yield settle(store, clock)
    assert net == []
    clock.advance(1)
    yield settle(store, clock)
    assert [n[2] for n in net] == ["later"]
    q2.stopService()


@pytest_twisted.inlineCallbacks
def test_reports_drained_before_recovery_still_finish_the_message(store, clock):
    """After a crash mid-send the SIM's stored +CDS reports (one per part) can arrive
    before the line is recovered: the part left ``sending`` is matched by its
    expected TP-MR, and the recovery that records it as sent publishes the combined
    final state (so SMPP receipts are not lost)."""
    net = []
    l1 = FakeLine(1, net)
    q = yield start_queue(store, clock, [l1])
    l1.hold = True
    a = yield q.submit(sub("r" * 300))  # 2 parts
    yield settle(store, clock)
    l1.held.pop(0).callback(1)  # part 1 sent and recorded
    yield settle(store, clock)
    assert len(net) == 2  # part 2 left the module, its +CMGS answer is lost
    q.stopService()
    q2 = yield start_queue(store, clock, [])
    events = []
    q2.subscribe(events.append)
    for mr, ok in ((1, True), (2, False)):
        yield q2.on_status_report(StatusReport(1, mr, ok, status=0 if ok else 0x41))
    assert (yield q2.info(a.message))["state"] == "sending"
    q2.add_line(FakeLine(1, net, mr=l1.mr))
    yield settle(store, clock)
    assert len(net) == 2  # nothing sent twice
    info = yield q2.info(a.message)
    assert info["state"] == "failed"
    assert [p["state"] for p in info["part_rows"]] == ["delivered", "failed"]
    finals = [(e.message, e.state) for e in events if e.seq is None and e.state.final]
    assert finals == [(a.message, State.FAILED)]
    q2.stopService()


@pytest_twisted.inlineCallbacks
def test_repeated_report_is_not_applied_to_a_newer_part_with_the_same_tp_mr(store, clock):
    """A report read again from the SIM after a restart (its deletion was lost) must
    not settle another part that reuses the 8-bit TP-MR: the part sent closest to the
    report's SCTS (TS 23.040 9.2.3.11) is meant, and when that one is already final
    the report is a repeat and changes nothing."""
    net = []
    l1 = FakeLine(1, net)
    q = yield start_queue(store, clock, [l1])
    a = yield q.submit(sub("first"))
    yield settle(store, clock)
    sent_a = clock.seconds()
    yield q.on_status_report(StatusReport(1, net[0][4], True, scts=sent_a))
    clock.advance(1000)
    l1.mr = 0  # the counter wrapped: the next part gets the same TP-MR
    b = yield q.submit(sub("second"))
    yield settle(store, clock)
    assert net[1][4] == net[0][4]
    assert (yield q.on_status_report(StatusReport(1, net[0][4], True, scts=sent_a))) is None
    assert (yield q.info(b.message))["state"] == "sent"
    yield q.on_status_report(StatusReport(1, net[1][4], False, status=0x41,
                                          scts=clock.seconds()))
    assert (yield q.info(a.message))["state"] == "delivered"
    assert (yield q.info(b.message))["state"] == "failed"
    q.stopService()


@pytest_twisted.inlineCallbacks
def test_report_for_a_part_still_sending_beats_an_old_settled_part(store, clock):
    """After a crash a part can still be ``sending`` (its +CMGS answer lost) when its
    report arrives; an old, settled part with the same TP-MR must not swallow it."""
    net = []
    l1 = FakeLine(1, net)
    q = yield start_queue(store, clock, [l1])
    yield q.submit(sub("old"))
    yield settle(store, clock)
    yield q.on_status_report(StatusReport(1, net[0][4], True, scts=clock.seconds()))
    clock.advance(1000)
    l1.mr, l1.hold = 0, True  # wrapped; the module sends but its answer never comes
    b = yield q.submit(sub("new"))
    yield settle(store, clock)
    assert net[1][4] == net[0][4]
    result = yield q.on_status_report(StatusReport(1, net[1][4], True, scts=clock.seconds()))
    assert result is not None and result.message == b.message
    info = yield q.info(b.message)
    assert [p["state"] for p in info["part_rows"]] == ["delivered"]
    q.stopService()
    l1.held.pop().callback(net[1][4])
    yield settle(store, clock)
