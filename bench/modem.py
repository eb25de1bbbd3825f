#!/usr/bin/env python
"""Modem layer benchmark (issue 4).

Prints ``name: value unit`` lines:

* PDU codec: SMS-SUBMIT encode, SMS-DELIVER decode (GSM 7-bit, 1 part), a 3-part UCS2
  message with emoji encode + decode + reassembly; messages per second on one core.
* 32 simulated lines through the real path (simulator ptys, AtEngine, Modem, line
  service): time to register all, resident memory per line idle, then under SMS
  load (each line receives and sends ``--sms`` messages), SMS/s through the ptys and
  memory per line after the load.

Run: ``.venv/bin/python bench/modem.py [--lines 32] [--sms 10] [--seconds 2]``.  The
machine is shared; figures are noisy.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from goip_tw.modem import pdu  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rate(fn, seconds: float) -> float:
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)


def bench_codec(seconds: float):
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    text = "Your code is 123456. Do not share it with anyone. Thanks for using goip-tw!"
    deliver_hex = pdu.encode_deliver("+4917012345678", text, ts, smsc="+491710760000")[0][0]
    long_text = "Привет, мир! 😀 " * 12

    def enc():
        pdu.encode_submit("+4917012345678", text, message_ref=7, status_report=True)

    def dec():
        pdu.decode(deliver_hex)

    long_parts = [h for h, _ in pdu.encode_deliver("+4917012345678", long_text, ts, concat_ref=9)]

    class NoClock:
        def callLater(self, *a):
            class T:
                def active(self):
                    return True

                def cancel(self):
                    pass
            return T()

    def multipart():
        pdu.encode_submit("+4917012345678", long_text, concat_ref=42)
        r = pdu.Reassembler(NoClock(), 60)
        for h in long_parts:
            whole = r.add(pdu.decode(h))
        assert whole is not None

    print(f"pdu_submit_encode_gsm7: {rate(enc, seconds):.0f} msgs/s")
    print(f"pdu_deliver_decode_gsm7: {rate(dec, seconds):.0f} msgs/s")
    print(f"pdu_ucs2_{len(long_parts)}part_encode_decode_reassemble: {rate(multipart, seconds):.0f} msgs/s")


def bench_lines(n_lines: int, n_sms: int):
    from twisted.internet import defer, reactor, task

    from goip_tw.config.sections.modems import ModemLineConfig, ModemsConfig
    from goip_tw.modem.hotplug import InotifyWatcher
    from goip_tw.modem.line import LineService
    from goip_tw.modem.service import ModemsService
    from goip_tw.modem.simswitch import SimulatorSwitch
    from goip_tw.simulator.network import Network

    tmp = tempfile.mkdtemp(prefix="goip-bench-")
    results = {}

    @defer.inlineCallbacks
    def wait(pred, timeout):
        for _ in range(int(timeout / 0.05)):
            if pred():
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        raise RuntimeError("timeout waiting for the lines")

    @defer.inlineCallbacks
    def run():
        gc.collect()
        base = rss_kib()
        net = Network(reactor, link_dir=tmp, boot_delay=0.05, reg_delay=0.1)
        phone = net.add_remote_phone("+15550009")
        opts = ModemsConfig(watchdog_interval=30, registration_poll=30, sms_poll=60,
                            replug_poll=1.0)
        watcher = InotifyWatcher(reactor)
        svc = ModemsService(watcher)
        received = []
        for i in range(n_lines):
            m = net.add_module("quectel" if i % 2 == 0 else "simcom", 1)
            cfg = ModemLineConfig(port=os.path.join(tmp, f"module{m.number}-at"),
                                  voice_port=os.path.join(tmp, f"module{m.number}-audio"))
            line = LineService(m.number, cfg, opts, reactor=reactor, watcher=watcher,
                               switch=SimulatorSwitch(m.switch_slot, 1))
            line.sms_handler = lambda n, sms: received.append(n) or defer.succeed(None)
            svc.add_line(line)
        net.start()
        t0 = time.perf_counter()
        svc.startService()
        yield wait(lambda: all(ln.state == "registered" for ln in svc.lines), 120)
        results["lines_register_all_s"] = time.perf_counter() - t0
        yield task.deferLater(reactor, 1.0, lambda: None)
        gc.collect()
        idle = rss_kib()
        results["rss_per_line_idle_kib"] = (idle - base) / n_lines
        t0 = time.perf_counter()
        for line in svc.lines:
            number = net.modules[line.number - 1].sim.msisdn
            for k in range(n_sms):
                phone.send_sms(number, f"load {k} for line {line.number}")
        sends = [line.modem.send_sms("+15550009", f"out {k} from {line.number}")
                 for line in svc.lines for k in range(n_sms)]
        yield defer.DeferredList(sends)
        yield wait(lambda: len(received) >= n_lines * n_sms, 300)
        dt = time.perf_counter() - t0
        results["sms_through_ptys_per_s"] = 2 * n_lines * n_sms / dt
        gc.collect()
        results["rss_per_line_after_sms_kib"] = (rss_kib() - base) / n_lines
        yield svc.stopService()
        net.stop()
        watcher.stop()

    def main():
        d = run()
        d.addErrback(lambda f: (print(f"bench failed: {f.getErrorMessage()}"), f.printTraceback()))
        d.addBoth(lambda _: reactor.callLater(0.2, reactor.stop))

    reactor.callWhenRunning(main)
    reactor.run()
    print(f"lines_simulated: {n_lines} lines")
    for key, unit in (("lines_register_all_s", "s"), ("rss_per_line_idle_kib", "KiB"),
                      ("sms_through_ptys_per_s", "SMS/s"),
                      ("rss_per_line_after_sms_kib", "KiB")):
        if key in results:
            print(f"{key}: {results[key]:.2f} {unit}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=32)
    ap.add_argument("--sms", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    bench_codec(args.seconds)
    bench_lines(args.lines, args.sms)


if __name__ == "__main__":
    main()
