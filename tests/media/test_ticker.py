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
