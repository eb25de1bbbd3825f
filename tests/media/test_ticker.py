from twisted.internet import task

from goip_tw.media.ticker import Ticker


def make():
    clock = task.Clock()
    return clock, Ticker(clock, now=clock.seconds)


def test_each_subscriber_ticks_every_period_in_its_own_phase():
    clock, t = make()
    hits = {i: [] for i in range(3)}
    subs = [t.subscribe(lambda i=i: hits[i].append(clock.seconds())) for i in range(3)]
    for _ in range(999):
        clock.advance(0.001)
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
