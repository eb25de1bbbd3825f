"""Received SMS are stored exactly once (SPEC §7): duplicates dropped, a crash between
the store commit and the module delete re-delivers into a duplicate, long messages
reassembled with a timeout."""

import pytest_twisted
from twisted.internet.task import Clock
from zope.interface import implementer

from goip_tw.sms.inbound import (
    MISSING_PART, IInboundInterceptor, InboundSms, Interception, ReceivedPart, normalise,
)
from tests.sms.inbound_support import Recorder, flush, history, open_store, part, store  # noqa: F401


def make(store, clock=None, **kw):
    clock = clock or Clock()
    inbound = InboundSms(store, clock, **kw)
    rec = Recorder()
    inbound.add_observer(rec)
    return inbound, rec, clock


@pytest_twisted.inlineCallbacks
def test_single_part_stored_once_and_duplicate_dropped(store):
    inbound, rec, _ = make(store)
    first = yield inbound.part_received(part("你好 😀"))
    again = yield inbound.part_received(part("你好 😀"))
    assert not first.duplicate and first.message.text == "你好 😀"
    assert again.duplicate
    rows = yield history(store)
    assert [(r["direction"], r["peer"], r["text"], r["line"]) for r in rows] == [
        ("in", "+8613670128297", "你好 😀", 1)]
    assert [m.id for m in rec.messages] == [rows[0]["id"]]


@pytest_twisted.inlineCallbacks
def test_same_second_different_texts_are_two_messages(store):
    inbound, rec, _ = make(store)
    yield inbound.part_received(part("one"))
    yield inbound.part_received(part("two"))
    assert [m.text for m in rec.messages] == ["one", "two"]


@pytest_twisted.inlineCallbacks
def test_crash_between_commit_and_delete_redelivers_as_duplicate(tmp_path):
    path = tmp_path / "gw.sqlite"
    s1 = yield open_store(path)
    inbound, rec, _ = make(s1)
    yield inbound.part_received(part("keep me", total=2, seq=1, ref=7))
    yield inbound.part_received(part("!", total=2, seq=2, ref=7))
    # the process dies here: the module still holds both parts
    inbound.stop()
    yield s1.stop()
    s2 = yield open_store(path)
    try:
        inbound2, rec2, _ = make(s2)
        yield inbound2.start()
        a = yield inbound2.part_received(part("keep me", total=2, seq=1, ref=7))
        b = yield inbound2.part_received(part("!", total=2, seq=2, ref=7))
        assert a.duplicate and b.duplicate
        rows = yield history(s2)
        assert [r["text"] for r in rows] == ["keep me!"]
        assert rec2.messages == [] and [m.text for m in rec.messages] == ["keep me!"]
        inbound2.stop()
    finally:
        yield s2.stop()


@pytest_twisted.inlineCallbacks
def test_reassembly_out_of_order_with_duplicate_part(store):
    inbound, rec, clock = make(store)
    texts = {1: "Hello ", 2: "long ", 3: "world"}
    outcomes = []
    for seq in (3, 1, 3, 2):
        outcomes.append((yield inbound.part_received(
            part(texts[seq], total=3, seq=seq, ref=200, scts=f"t{seq}"))))
    assert [o.duplicate for o in outcomes] == [False, False, True, False]
    assert [m.text for m in rec.messages] == ["Hello long world"]
    assert rec.messages[0].parts == 3 and rec.messages[0].complete
    assert clock.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_missing_part_times_out_into_incomplete_message(store):
    inbound, rec, clock = make(store, reassembly_timeout=300)
    yield inbound.part_received(part("abc", total=3, seq=1, ref=9))
    yield inbound.part_received(part("ghi", total=3, seq=3, ref=9))
    clock.advance(299)
    yield flush(store)
    assert rec.messages == []
    clock.advance(1)
    yield flush(store)
    assert [(m.text, m.complete) for m in rec.messages] == [(f"abc{MISSING_PART}ghi", False)]
    rows = yield history(store)
    assert rows[0]["state"] == "incomplete"
    assert clock.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_restart_rearms_reassembly_timer(tmp_path):
    path = tmp_path / "gw.sqlite"
    s1 = yield open_store(path)
    clock = Clock()
    clock.advance(1000)
    inbound, _, _ = make(s1, clock, reassembly_timeout=300)
    yield inbound.part_received(part("abc", total=2, seq=1, ref=1))
    inbound.stop()
    yield s1.stop()
    s2 = yield open_store(path)
    try:
        clock.advance(100)
        inbound2, rec2, _ = make(s2, clock, reassembly_timeout=300)
        yield inbound2.start()
        clock.advance(199)
        yield flush(s2)
        assert rec2.messages == []
        clock.advance(1)
        yield flush(s2)
        assert [m.text for m in rec2.messages] == ["abc" + MISSING_PART]
        inbound2.stop()
        assert clock.getDelayedCalls() == []
    finally:
        yield s2.stop()


@pytest_twisted.inlineCallbacks
def test_prune_keeps_recent_duplicate_keys(store):
    inbound, rec, clock = make(store, retention=100)
    yield inbound.part_received(part("x"))
    clock.advance(50)
    yield inbound.prune()
    assert (yield inbound.part_received(part("x"))).duplicate
    clock.advance(100)
    yield inbound.prune()
    assert not (yield inbound.part_received(part("x"))).duplicate


def test_bad_fields_are_repaired_not_dropped():
    p = normalise(ReceivedPart(line=1, sender=None, text="t", scts="s", total=2, seq=5, ref=-3))
    assert (p.total, p.seq, p.ref, p.sender) == (1, 1, 0, "")
    p = normalise(ReceivedPart(line=1, sender="1", text="t", scts="s", total=999))
    assert p.total == 1


@pytest_twisted.inlineCallbacks
def test_bad_part_is_still_stored(store):
    inbound, rec, _ = make(store)
    out = yield inbound.part_received(part("odd", total=2, seq=9, ref=3))
    assert out.message.text == "odd"


@implementer(IInboundInterceptor)
class Secret:
    def __init__(self):
        self.ran = []

    def intercept(self, msg):
        if msg.text.startswith("SECRET "):
            return Interception("command", "SECRET ****", self.ran.append)
        return None


@pytest_twisted.inlineCallbacks
def test_interceptor_claims_redacts_and_runs_once(store):
    secret = Secret()
    inbound, rec, _ = make(store, interceptors=[secret])
    yield inbound.part_received(part("SECRET hunter2"))
    yield inbound.part_received(part("SECRET hunter2"))
    assert rec.messages == [] and len(secret.ran) == 1
    rows = yield history(store)
    assert [(r["text"], r["state"]) for r in rows] == [("SECRET ****", "command")]
    parts = yield store.query("SELECT text FROM sms_inbound_part")
    assert [r["text"] for r in parts] == [""]


def incoming(text, key="460|+86|2026-11-26T10:00:00+08:00|-|abc", missing=(), parts=1):
    import datetime

    from goip_tw.modem.model import IncomingSms

    return IncomingSms(
        sender="+8613670128297", text=text,
        timestamp=datetime.datetime(2026, 11, 26, 10, 0, tzinfo=datetime.timezone.utc),
        smsc=None, encoding="ucs2", data=None, parts=parts, missing=tuple(missing),
        imsi="460001234567890", dedupe_key=key)


@pytest_twisted.inlineCallbacks
def test_modem_handler_uses_the_modem_dedupe_key(store):
    inbound, rec, _ = make(store)
    handle = inbound.handler_for(2, sim=lambda: ("8986001", "B"))
    yield handle(incoming("long text 😀", key="k1", parts=3))
    # the same message again, this time complete after a restart of the modem side
    out = yield handle(incoming("long text 😀!", key="k1", parts=3))
    assert out.duplicate
    yield handle(incoming("partial", key="k2", parts=2, missing=(2,)))
    assert [(m.line, m.parts, m.complete, m.iccid, m.slot) for m in rec.messages] == [
        (2, 3, True, "8986001", "B"), (2, 2, False, "8986001", "B")]
    assert rec.messages[0].scts == "2026-11-26T10:00:00+00:00"
    rows = yield history(store)
    assert [(r["parts"], r["state"], r["slot"]) for r in rows] == [
        (3, "received", "B"), (2, "incomplete", "B")]


from hypothesis import given, settings, strategies as st  # noqa: E402

_any = st.one_of(st.none(), st.integers(-10**6, 10**6), st.text(max_size=20), st.booleans())


@settings(max_examples=300, deadline=None)
@given(line=_any, total=_any, seq=_any, ref=_any, sender=_any, text=_any)
def test_normalise_always_gives_a_storable_part(line, total, seq, ref, sender, text):
    p = normalise(ReceivedPart(line=line, sender=sender, text=text, scts="s", total=total,
                               seq=seq, ref=ref))
    assert isinstance(p.line, int) and p.line >= 0
    assert 1 <= p.seq <= p.total <= 255 and 0 <= p.ref <= 0xFFFF
    assert isinstance(p.sender, str) and isinstance(p.text, str)


@pytest_twisted.inlineCallbacks
def test_modem_key_without_imsi_then_with_imsi_is_one_message(store):
    """The modem may deliver before it read the IMSI (key "-|...") and, after a crash,
    again once it has ("<IMSI>|..."): still one message (found by the SIGKILL test)."""
    import attrs

    inbound, rec, _ = make(store)
    handle = inbound.handler_for(1, sim=lambda: ("", "A"))
    first = attrs.evolve(incoming("x", key="-|+86|t|-|abc"), imsi=None)
    again = incoming("x", key="460001234567890|+86|t|-|abc")
    yield handle(first)
    assert (yield handle(again)).duplicate
    other_slot = inbound.handler_for(1, sim=lambda: ("", "B"))
    assert not (yield other_slot(again)).duplicate  # another SIM of the line
    assert len(rec.messages) == 2


@pytest_twisted.inlineCallbacks
def test_a_failing_interceptor_or_planner_never_blocks_storage(store):
    class Broken:
        def intercept(self, msg):
            raise RuntimeError("bug")

        def plan(self, conn, msg, now):
            raise RuntimeError("bug")

        def schedule(self, jobs):
            raise AssertionError("nothing to schedule")

    inbound, rec, _ = make(store, interceptors=[Broken()], planner=Broken())
    out = yield inbound.part_received(part("still stored"))
    assert out.message.text == "still stored" and out.jobs == ()
    assert [m.text for m in rec.messages] == ["still stored"]
