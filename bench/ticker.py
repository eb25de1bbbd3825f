#!/usr/bin/env python
"""Media ticker wake-up lateness on an idle box (issue 6): callLater against timerfd.

The ticker's p99 wake-up lateness is the floor under every send-lateness figure
of ``bench/media.py`` (budget: 2 ms).  Woken through ``reactor.callLater`` it
waits in epoll with a timeout rounded up to whole milliseconds; woken through a
timerfd it is late only by the kernel's and the reactor's own latency.  Both
modes run in the same process on the same reactor with ``--subscribers`` no-op
members (20 slots, so every slot of the 20 ms period wakes), in alternating
rounds so a noisy neighbour hits both alike; ``--seconds`` per mode in total.

Prints ``name: value unit`` lines: p50 and p99 wake lateness of each mode and
the p99 ratio timerfd / callLater (below 1: the timerfd wakes closer to the
deadline).  By default (2+ CPUs) the process is pinned to one core.

Run: ``.venv/bin/python bench/ticker.py`` (``--quick`` for a 1 s run per mode).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ROUNDS = 4


def out(name, value, unit=""):
    print(f"{name}: {value} {unit}".rstrip(), flush=True)


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def pin_to_one_core() -> str:
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return "not pinned (no sched_setaffinity)"
    if len(cores) < 2:
        return "not pinned (one CPU)"
    os.sched_setaffinity(0, {cores[0]})
    return f"pinned to core {cores[0]}"


def measure(reactor, seconds: float, subscribers: int):
    """Alternating rounds of each mode; the wake lateness samples per mode."""
    from twisted.internet import defer, task

    from goip_tw.media.ticker import Ticker

    tickers = {"calllater": Ticker(reactor, timerfd=False, lateness_samples=10 ** 7),
               "timerfd": Ticker(reactor, lateness_samples=10 ** 7)}
    if tickers["timerfd"].wake_mode != "timerfd":
        raise SystemExit("bench/ticker.py: no timerfd wake-up here (Linux, built _timerfd.pyx?)")
    samples = {name: [] for name in tickers}

    @defer.inlineCallbacks
    def run():
        yield task.deferLater(reactor, 0.2, lambda: None)  # let start-up settle
        for _ in range(ROUNDS):
            for name, ticker in tickers.items():
                subs = [ticker.subscribe(lambda: None) for _ in range(subscribers)]
                ticker.take_lateness()
                yield task.deferLater(reactor, seconds / ROUNDS, lambda: None)
                samples[name] += ticker.take_lateness()[0]
                for s in subs:
                    ticker.unsubscribe(s)
        return samples

    return run()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured time per mode")
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="1 s per mode")
    p.add_argument("--no-pin", action="store_true", help="leave placement to the scheduler")
    args = p.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    print("# " + ("not pinned (--no-pin)" if args.no_pin else pin_to_one_core()), flush=True)

    from twisted.internet import reactor

    result = {}

    def done(samples):
        result.update(samples)
        reactor.stop()

    def failed(f):
        print(f"# failed: {f.getErrorMessage()}", flush=True)
        reactor.stop()

    reactor.callWhenRunning(lambda: measure(reactor, seconds, args.subscribers)
                            .addCallbacks(done, failed))
    reactor.run()
    if not result:
        return 1
    p99 = {}
    for name, lateness in result.items():
        print(f"# {name}: {len(lateness)} wake-ups", flush=True)
        out(f"ticker_wake_p50_{name}", f"{percentile(lateness, 0.50) * 1e3:.3f}", "ms")
        p99[name] = percentile(lateness, 0.99)
        out(f"ticker_wake_p99_{name}", f"{p99[name] * 1e3:.3f}", "ms")
    out("ticker_wake_p99_ratio", f"{p99['timerfd'] / p99['calllater']:.3f}", "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
