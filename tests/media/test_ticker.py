import importlib
import os
import sys
import time

import pytest
import pytest_twisted
from twisted.internet import task

from goip_tw.media.ticker import Ticker


def make():
    clock = task.Clock()
    return clock, Ticker(clock, now=clock.seconds)


def test_each_subscriber_ticks_every_period_in_its_own_phase():
    clock, t = make()
    hits = {i: [] for i in range(3)}
    subs = [t.subscribe(lambda i=i: hits[i].append(clock.seconds())) for i in range(3)]
    # the reactor runs twice per slot step, off the deadline grid (a quarter step
    # after and before each deadline), so neighbouring phases land apart and a
    # deadline rounded a hair either way still fires at the same reactor run
    for k in range(1998):
        clock.advance((k / 2 + 0.25) * t.step - clock.seconds())
    for i in range(3):
        assert len(hits[i]) == 50
        gaps = {round(b - a, 6) for a, b in zip(hits[i][1:], hits[i][2:])}
        assert gaps == {0.02}
    phases = {round(hits[i][0], 6) for i in range(3)}
    assert len(phases) == 3
    for s in subs:
        t.unsubscribe(s)
    assert clock.getDelayedCalls() == []


def test_no_drift_over_an_hour_with_late_wakeups():
    clock, t = make()
    hits = []
    t.subscribe(lambda: hits.append(clock.seconds()))
    # the reactor only gets to run every 13 ms, so every wake-up is late by 0-13 ms
    for _ in range(300000):
        clock.advance(0.013)
        if clock.seconds() >= 3600:
            break
    assert abs(len(hits) - 3600 / 0.02) <= 1
    assert 0 < max(t.lateness) < 0.013 + 1e-9
    # each packet still leaves in its own 20 ms period: no drift at the end of the hour
    assert abs(hits[-1] - (len(hits) - 1) * 0.02) < 0.013 + 1e-6


def test_far_behind_skips_instead_of_bursting():
    clock, t = make()
    hits = []
    t.subscribe(lambda: hits.append(1))
    clock.advance(0)
    clock.advance(1.0)  # the process stalled for a second
    clock.advance(0)
    assert len(hits) <= 3
    assert t.skipped >= 40


def test_callback_errors_do_not_stop_the_ticker():
    clock, t = make()
    ok = []

    def bad():
        raise RuntimeError("boom")

    t.subscribe(bad)
    t.subscribe(lambda: ok.append(1))
    for _ in range(10):
        clock.advance(0.02)
    assert len(ok) >= 9 and t.errors >= 9


def test_a_slot_runs_every_send_before_any_receive():
    """Two phases per slot: the last packet of a slot does not wait for decoding."""
    clock, t = make()
    order = []
    n = t.slots
    subs = [t.subscribe(lambda i=i: order.append(("send", i)),
                        after=lambda i=i: order.append(("receive", i))) for i in range(2 * n)]
    # two members per slot
    clock.advance(0)
    assert order == [("send", 0), ("send", n), ("receive", 0), ("receive", n)]
    for _ in range(n):
        clock.advance(t.step)
    assert len(order) == 4 * n + 4
    wake, sent, ended = t.take_samples()
    assert len(wake) == len(sent) == len(ended) == n + 1
    assert all(w <= s <= e for w, s, e in zip(wake, sent, ended))
    assert t.take_samples() == ([], [], [])
    for s in subs:
        t.unsubscribe(s)
    assert clock.getDelayedCalls() == []


def test_a_member_stopped_in_the_send_phase_gets_no_receive():
    clock, t = make()
    seen = []
    victim = t.subscribe(lambda: seen.append("victim send"), after=lambda: seen.append("victim receive"))
    killer = t.subscribe(lambda: t.unsubscribe(victim))
    # both in different slots unless forced: put them in the same slot
    t._members[killer.slot].remove(killer)
    killer.slot = victim.slot
    t._members[victim.slot].insert(0, killer)
    clock.advance(0.02)
    assert "victim receive" not in seen
    t.unsubscribe(killer)
    assert clock.getDelayedCalls() == []


def test_a_member_leaving_and_rejoining_inside_a_tick_keeps_one_wakeup():
    """A session that stops and restarts from its own callback (last member out,
    first member in) must not leave two wake-up chains running."""
    clock, t = make()
    hits = []
    box = {}

    def bounce():
        hits.append(clock.seconds())
        if len(hits) == 3:
            t.unsubscribe(box["sub"])
            box["sub"] = t.subscribe(bounce)

    box["sub"] = t.subscribe(bounce)
    for _ in range(50):
        clock.advance(0.02)
        assert len(clock.getDelayedCalls()) == 1
    assert 49 <= len(hits) <= 52
    t.unsubscribe(box["sub"])
    assert clock.getDelayedCalls() == []


def test_a_member_joining_inside_a_tick_keeps_one_wakeup():
    clock, t = make()
    hits = []
    joined = []

    def first():
        hits.append(1)
        if not joined:
            joined.append(t.subscribe(lambda: hits.append(2)))

    a = t.subscribe(first)
    for _ in range(50):
        clock.advance(0.02)
        assert len(clock.getDelayedCalls()) == 1
    assert 48 <= hits.count(1) <= 52 and 48 <= hits.count(2) <= 52
    t.unsubscribe(a)
    t.unsubscribe(joined[0])
    assert clock.getDelayedCalls() == []


def test_close_drops_every_member_and_the_ticker_can_start_again():
    clock, t = make()
    hits = []
    subs = [t.subscribe(lambda: hits.append(1)) for _ in range(5)]
    clock.advance(0.02)
    t.close()
    assert len(t) == 0 and clock.getDelayedCalls() == []
    assert not any(s.active for s in subs)
    t.unsubscribe(subs[0])  # harmless after close
    before = len(hits)
    clock.advance(0.1)
    assert len(hits) == before
    t.subscribe(lambda: hits.append(2))
    clock.advance(0.02)
    assert 2 in hits


# -- wake-up mode -----------------------------------------------------------------------

def test_fallback_to_calllater_off_a_real_reactor_or_clock():
    from twisted.internet import reactor

    assert make()[1].wake_mode == "callLater"
    assert Ticker(task.Clock()).wake_mode == "callLater"  # monotonic time, but no fds
    assert Ticker(reactor, now=lambda: time.monotonic()).wake_mode == "callLater"
    assert Ticker(reactor, timerfd=False).wake_mode == "callLater"


# -- the timerfd path, on the real reactor ----------------------------------------------

def _ensure_timerfd_built():
    """As tests/media/conftest.py does for the codecs: build a checkout's extensions."""
    if not sys.platform.startswith("linux"):
        return
    try:
        importlib.import_module("goip_tw.media._timerfd")
    except ImportError:
        from goip_tw.media.build_ext import build_in_place
        build_in_place()
        importlib.invalidate_caches()


_ensure_timerfd_built()

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux only")


def open_timerfds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[timerfd]"
        except OSError:
            pass
    return n


def pause(seconds):
    from twisted.internet import reactor
    return task.deferLater(reactor, seconds, lambda: None)


@linux_only
@pytest_twisted.inlineCallbacks
def test_timerfd_wakes_each_subscriber_once_per_period_in_its_own_phase():
    from twisted.internet import reactor

    t = Ticker(reactor)
    assert t.wake_mode == "timerfd"
    fired = []
    wrapped = t._fire

    def counted_fire():  # what bench/media.py does to time each slot
        fired.append(1)
        wrapped()

    t._fire = counted_fire
    order = []
    subs = [t.subscribe(lambda i=i: order.append(i)) for i in range(3)]
    assert len({s.slot for s in subs}) == 3
    waker = t._waker
    assert waker in reactor.getReaders()
    assert not [c for c in reactor.getDelayedCalls() if c.func == t._woken]
    periods = 25
    yield pause(periods * t.period)
    for s in subs:
        t.unsubscribe(s)
    for i in range(3):
        assert periods - 2 <= order.count(i) <= periods + 2
    # each in its own phase, the same one every period: the order never changes
    start = order.index(0)
    assert order[start:start + 3 * (periods - 3)] == [0, 1, 2] * (periods - 3)
    # one wake-up per slot, or fewer: slots already due run in the same wake-up
    assert 0 < len(fired) <= t.ticks == len(order)
    assert min(t.lateness) >= 0  # a timerfd never wakes before its deadline
    assert waker not in reactor.getReaders()


@linux_only
@pytest_twisted.inlineCallbacks
def test_last_unsubscribe_removes_the_reader_and_closes_the_fd():
    from twisted.internet import reactor

    baseline = open_timerfds()
    t = Ticker(reactor)
    a = t.subscribe(lambda: None)
    b = t.subscribe(lambda: None)
    waker = t._waker
    fd = waker.fileno()
    assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[timerfd]"
    assert open_timerfds() == baseline + 1
    yield pause(0.05)
    t.unsubscribe(a)
    assert waker in reactor.getReaders()  # one member left
    t.unsubscribe(b)
    assert waker not in reactor.getReaders()
    assert waker.fileno() == -1 and t._waker is None
    assert open_timerfds() == baseline
    # subscribe/unsubscribe cycles, with and without a reactor turn in between
    for i in range(40):
        s = t.subscribe(lambda: None)
        if i % 4 == 0:
            yield pause(0.003)
        t.unsubscribe(s)
    assert open_timerfds() == baseline
    assert not [r for r in reactor.getReaders() if isinstance(r, type(waker))]


@linux_only
@pytest_twisted.inlineCallbacks
def test_timerfd_member_leaving_and_rejoining_inside_a_tick():
    """The reader that is being served is removed and its fd closed; a new timer
    takes over (possibly on the same fd number) and keeps ticking."""
    from twisted.internet import reactor

    baseline = open_timerfds()
    t = Ticker(reactor)
    hits = []
    box = {}

    def bounce():
        hits.append(1)
        if len(hits) in (5, 10):
            t.unsubscribe(box["sub"])
            box["sub"] = t.subscribe(bounce)

    box["sub"] = t.subscribe(bounce)
    yield pause(20 * t.period)
    # once per period, plus the immediate first tick of each of the 2 restarts
    assert 20 - 2 <= len(hits) <= 20 + 2 + 2
    assert open_timerfds() == baseline + 1
    wakers = [r for r in reactor.getReaders() if isinstance(r, type(t._waker))]
    assert wakers == [t._waker]
    t.unsubscribe(box["sub"])
    assert open_timerfds() == baseline


@linux_only
def test_stopping_the_media_service_leaves_no_reader():
    from twisted.internet import reactor

    from goip_tw.config.sections.media import MediaConfig
    from goip_tw.media.service import MediaService

    baseline = open_timerfds()
    svc = MediaService(reactor, MediaConfig(), interface="127.0.0.1", address="127.0.0.1")
    svc.startService()
    sub = svc.ticker.subscribe(lambda: None)
    waker = svc.ticker._waker
    assert waker in reactor.getReaders()
    svc.stopService()
    assert waker not in reactor.getReaders()
    assert not sub.active and len(svc.ticker) == 0
    assert open_timerfds() == baseline


def test_when_behind_sends_go_first_and_receives_follow_in_order():
    clock = task.Clock()
    t = Ticker(clock, now=clock.seconds)
    order = []
    waiting = []  # receive phases waiting when each send ran
    for i in range(t.slots):
        t.subscribe(lambda i=i: (order.append(("send", i)), waiting.append(len(t._deferred))),
                    after=lambda i=i: order.append(("recv", i)))
    clock.advance(0)          # slot 0 on time: its receive right after its send
    assert order == [("send", 0), ("recv", 0)]
    del order[:]
    clock.advance(0.0055)     # the reactor was away: slots 1-5 are all due now
    # every send of the backlog first, then the receives in slot order
    assert order == [("send", i) for i in range(1, 6)] + [("recv", i) for i in range(1, 6)]
    # a long stall (2.5 periods): the sends of every due slot run first; the
    # receives wait, at most receive_backlog of them, and none is lost or reordered
    del order[:]
    del waiting[:]
    clock.advance(0.050)
    assert max(waiting) == t.receive_backlog == 2 * t.slots
    for i in range(t.slots):
        mine = [e for e in order if e[1] == i]
        sends = [k for k, e in enumerate(mine) if e[0] == "send"]
        recvs = [k for k, e in enumerate(mine) if e[0] == "recv"]
        assert len(sends) == len(recvs)  # every period handled on both sides
        # the n-th receive follows the n-th send
        assert all(r > s for s, r in zip(sends, recvs))
    # caught up: on time again, each slot's receive right after its send
    del order[:]
    clock.advance(t.step)
    assert order == [("send", order[0][1]), ("recv", order[0][1])]
    assert not t._deferred
    t.close()


def test_an_overloaded_core_never_starves_the_receive_side():
    """Every slot late (its work takes longer than the slot): receives run
    anyway once receive_backlog wait, one slot's worth per slot."""
    clock = task.Clock()
    elapsed = [0.0]  # the work itself moves time: each send takes 1.5 slots
    t = Ticker(clock, now=lambda: elapsed[0], slots=1, max_catch_up=10 ** 6)
    counts = {"send": 0, "recv": 0}
    most_waiting = []

    def slow_send():
        counts["send"] += 1
        elapsed[0] += 1.5 * t.step
        most_waiting.append(counts["send"] - counts["recv"])
        if counts["send"] == 300:
            t.close()  # the only way out: the ticker never gets ahead again

    t.subscribe(slow_send, after=lambda: counts.__setitem__("recv", counts["recv"] + 1))
    clock.advance(0)
    assert counts["send"] == 300
    # once receive_backlog wait, each slot runs one: the backlog stays bounded
    assert max(most_waiting) == t.receive_backlog + 1
    assert counts["recv"] >= 300 - t.receive_backlog - 1


def test_a_wakeup_waits_for_one_receive_at_most():
    """Waiting receive phases run member by member while the next slot is not
    due, so after a stall each wake-up is late by one member's receive at most."""
    clock = task.Clock()
    t = Ticker(clock, now=clock.seconds, slots=4)
    cost = 0.15 * t.step

    def receive():
        clock.advance(cost)  # the work takes time (nothing else is due meanwhile)

    for _ in range(8):  # two per slot
        t.subscribe(lambda: None, after=receive)
    clock.advance(0)
    t.take_lateness()
    clock.advance(3 * t.step)  # a stall: three slots fall due at once
    for _ in range(40):  # then the reactor is back: woken exactly when asked
        due = clock.getDelayedCalls()[0].getTime()
        clock.advance(max(0.0, due - clock.seconds()))
    wake, _ = t.take_lateness()
    assert wake[0] >= 2 * t.step  # the stall
    assert max(wake[3:]) <= cost + 1e-9  # whole slots of receives would be 2 x cost
    t.close()


def test_slots_already_due_run_in_one_wakeup():
    """Catching up costs no reactor round trip per slot: the sends of every
    slot that is due run back to back, then the receives."""
    clock = task.Clock()
    t = Ticker(clock, now=clock.seconds)
    fired = []  # slots run by each wake-up
    wrapped = t._fire

    def counted():
        before = t.ticks
        wrapped()
        fired.append(t.ticks - before)

    t._fire = counted
    order = []
    for i in range(t.slots):
        t.subscribe(lambda i=i: order.append(("send", i)),
                    after=lambda i=i: order.append(("recv", i)))
    clock.advance(0)
    del fired[:], order[:]
    clock.advance(0.0055)  # slots 1-5 are due
    assert fired == [5]
    assert order == [("send", i) for i in range(1, 6)] + [("recv", i) for i in range(1, 6)]
    del fired[:]
    clock.advance(0.07)  # a long stall: at most a period of slots per wake-up
    assert fired[:3] == [t.slots] * 3
    t.close()


def test_a_lone_member_woken_late_still_receives_right_after_its_send():
    """The next wake-up is the next slot with members (a period away for a
    lone call), not the next slot: a late wake-up does not hold receives back."""
    clock = task.Clock()
    t = Ticker(clock, now=clock.seconds)
    order = []
    t.subscribe(lambda: order.append("send"), after=lambda: order.append("recv"))
    clock.advance(0)
    for _ in range(10):
        clock.advance(t.period + 0.0015)  # every wake-up 1.5 slots late
    assert order == ["send", "recv"] * (len(order) // 2) and len(order) >= 18
    assert not t._deferred
    t.close()
