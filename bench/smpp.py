#!/usr/bin/env python
"""SMPP benchmark (issue 8): durable submit_sm per second, and end-to-end SMS
through 32 simulated lines with the per-line minimum interval (F-494) honoured.

* ``smpp_durable_submit_per_s_w<W>``: our SMSC in a child process pinned to one
  core (sched_setaffinity; the reactor thread plus the store's writer thread) with a SQLite store in WAL mode,
  ``synchronous=FULL``; every submit_sm_resp is written only after the group
  commit that holds the message.  The load comes from this process: ``--conns``
  connections bound as transmitters, each keeping ``W`` submit_sm in flight
  (window 10 and 50), pre-built PDUs, a plain ``struct`` response parser.
* ``smpp_e2e_sms_per_s``: N messages through 32 lines that each accept one SMS per
  ``--interval`` seconds; prints the rate, the highest rate the interval allows and
  the shortest gap seen on any line (must be >= interval).  Lines are instant
  in-process fakes, so this measures the queue's scheduling alone.
* ``smpp_sim_sms_per_s``: the same through 32 *simulated modules* (python -m
  goip_tw.simulator in its own process, the real modem layer on its ptys, AT+CMGS
  per part); the gaps are measured at the simulated network (``sms_submit`` events).

Run: ``.venv/bin/python bench/smpp.py [--seconds 5] [--conns 4]``.  Jasmin is not
measured: its SMPP server needs RabbitMQ and Redis, which this bench does not start.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HEADER = struct.Struct(">IIII")


# -- the SMSC process ----------------------------------------------------------------------

def serve_sim(data_dir: str, link_dir: str, modules: int, interval: float) -> None:
    """SMSC + queue + real modem lines on the simulator's ptys."""
    import sqlite3

    from twisted.internet import defer, reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from goip_tw.config.sections.modems import ModemLineConfig, ModemsConfig
    from goip_tw.modem.line import LineService
    from goip_tw.sms.lines import ModemSmsLine
    from goip_tw.sms.queue import QueueSettings, SmsQueue
    from goip_tw.smpp.protocol import SmppSettings, SmscFactory
    from goip_tw.smpp.service import SmscBackend
    from goip_tw.store import migrations
    from goip_tw.store.sqlite import SqliteStore

    migrations.AREA_MODULES = ("goip_tw.sms.schema",)
    path = os.path.join(data_dir, "sim.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    store = SqliteStore(path, reactor=reactor)
    queue = SmsQueue(store, reactor, settings=QueueSettings(interval=interval,
                                                            status_reports=False))
    options = ModemsConfig(registration_poll=5.0)
    lines = []
    for n in range(1, modules + 1):
        ls = LineService(n, ModemLineConfig(port=os.path.join(link_dir, f"module{n}-at"),
                                            name=f"line{n}"), options, reactor=reactor)
        ls.sms_handler = lambda line, sms: defer.succeed(None)
        ls.add_observer(lambda event: queue.line_changed())
        queue.add_line(ModemSmsLine(ls))
        lines.append(ls)
    backend = SmscBackend(queue, reactor, "bench", "pw", lines=lambda: modules)

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            if line.strip() == b"report":
                d = store.query("SELECT COUNT(*) FROM sms_message WHERE state = 'sent'")
                d.addCallback(lambda rows: self.sendLine(
                    f"SENT {rows[0][0]} {sum(ls.state == 'registered' for ls in lines)}".encode()))

        def connectionLost(self, reason):
            reactor.stop()

    @defer.inlineCallbacks
    def start():
        yield store.start()
        yield queue.startService()
        for ls in lines:
            ls.startService()
        port = reactor.listenTCP(0, SmscFactory(backend, reactor, SmppSettings(window=1000)),
                                 interface="127.0.0.1")
        stdio.StandardIO(Control())
        sys.stdout.write(f"PORT {port.getHost().port}\n")
        sys.stdout.flush()

    reactor.callWhenRunning(start)
    reactor.run()


def sim_e2e(messages: int, modules: int, interval: float, tmp: str) -> None:
    import json
    import urllib.request

    links = os.path.join(tmp, "links")
    os.makedirs(links)
    sim = subprocess.Popen([sys.executable, "-m", "goip_tw.simulator", "--modules", str(modules),
                            "--slots", "1", "--control-port", "0", "--link-dir", links,
                            "--reg-delay", "0.2"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, cwd=ROOT)
    gw = None
    try:
        control = None
        while control is None:
            line = sim.stdout.readline().decode()
            if not line:
                raise SystemExit("simulator did not start")
            if line.startswith("control: "):
                control = line.split()[1].rstrip("/")
        gw = subprocess.Popen([sys.executable, __file__, "--serve-sim", tmp, "--link-dir", links,
                               "--lines", str(modules), "--interval", str(interval)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
        port = int(gw.stdout.readline().decode().split()[1])
        deadline = time.monotonic() + 120
        while True:  # wait until every line is registered
            gw.stdin.write(b"report\n")
            gw.stdin.flush()
            _, sent, registered = gw.stdout.readline().decode().split()
            if int(registered) == modules or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        t0 = time.monotonic()
        ok, err, _ = load_count(port, 4, 10, messages // 4)
        accepted = time.monotonic() - t0
        sent = 0
        while sent < ok and time.monotonic() - t0 < 600:
            time.sleep(0.2)
            gw.stdin.write(b"report\n")
            gw.stdin.flush()
            sent = int(gw.stdout.readline().decode().split()[1])
        elapsed = time.monotonic() - t0
        events, since = [], 0
        while True:
            with urllib.request.urlopen(f"{control}/events?since={since}", timeout=10) as r:
                data = json.load(r)
            if not data["events"]:
                break
            events += data["events"]
            since = data["next"]
        last, gap = {}, 1e9
        for e in events:
            if e["kind"] == "sms_submit":
                m = e["module"]
                if m in last:
                    gap = min(gap, e["time"] - last[m])
                last[m] = e["time"]
        ceiling = best_rate(sent, modules, interval)
        print(f"smpp_sim_sms_per_s: {sent / elapsed:.1f} sms/s ({sent} of {ok} accepted in "
              f"{accepted:.1f} s, sent through {modules} simulated modules in {elapsed:.1f} s,"
              f" at most {ceiling:.0f}/s for {sent} SMS at {interval} s interval)")
        print(f"smpp_sim_shortest_line_gap: {gap:.3f} s at the simulated network "
              f"(interval {interval} s)")
    finally:
        if gw is not None:
            gw.stdin.close()
            try:
                gw.wait(15)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait()
        sim.terminate()
        try:
            sim.wait(15)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()


def serve(data_dir: str, lines: int, interval: float) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, threads included
    import sqlite3

    from twisted.internet import reactor

    from goip_tw.sms.queue import QueueSettings, SmsQueue
    from goip_tw.smpp.protocol import SmppSettings, SmscFactory
    from goip_tw.smpp.service import SmscBackend
    from goip_tw.store import migrations
    from goip_tw.store.sqlite import SqliteStore
    from twisted.internet import defer

    migrations.AREA_MODULES = ("goip_tw.sms.schema",)
    path = os.path.join(data_dir, "bench.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    store = SqliteStore(path, reactor=reactor)
    queue = SmsQueue(store, reactor, settings=QueueSettings(
        max_queued=10_000_000, interval=interval, sweep_interval=3600))
    sent_log: list[tuple[int, float]] = []

    class Line:
        def __init__(self, n):
            self.number = n
            self.mr = 0

        def can_send(self):
            return True

        def send_part(self, recipient, text, concat, report):
            self.mr = (self.mr + 1) % 256
            sent_log.append((self.number, time.monotonic()))
            return defer.succeed(self.mr)

        def last_used_mr(self):
            return defer.succeed(self.mr)

    for n in range(1, lines + 1):
        queue.add_line(Line(n))
    backend = SmscBackend(queue, reactor, "bench", "pw", lines=lambda: lines)

    def report():
        gaps = {}
        last = {}
        for n, t in sent_log:
            if n in last:
                gaps[n] = min(gaps.get(n, 1e9), t - last[n])
            last[n] = t
        shortest = min(gaps.values()) if gaps else 0.0
        sys.stdout.write(f"SENT {len(sent_log)} {shortest:.4f} {store.commits}\n")
        sys.stdout.flush()

    def command(line: bytes):
        if line.strip() == b"report":
            report()

    from twisted.internet import stdio
    from twisted.protocols.basic import LineReceiver

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            command(line)

        def connectionLost(self, reason):
            reactor.stop()

    @defer.inlineCallbacks
    def start():
        yield store.start()
        yield queue.startService()
        port = reactor.listenTCP(0, SmscFactory(backend, reactor, SmppSettings(
            window=1000, inactivity_timeout=600)), interface="127.0.0.1")
        stdio.StandardIO(Control())
        sys.stdout.write(f"PORT {port.getHost().port}\n")
        sys.stdout.flush()

    reactor.callWhenRunning(start)
    reactor.run()


# -- the load (this process) ---------------------------------------------------------------

def _cstr(s: bytes) -> bytes:
    return s + b"\x00"


def submit_pdu(seq: int, text: bytes) -> bytes:
    body = (_cstr(b"") + b"\x01\x01" + _cstr(b"+100") + b"\x01\x01" + _cstr(b"+4915550001")
            + b"\x00\x00\x00" + _cstr(b"") + _cstr(b"") + b"\x00\x00\x00\x00"
            + bytes([len(text)]) + text)
    return HEADER.pack(16 + len(body), 4, 0, seq) + body


def bind(sock: socket.socket, system_id=b"bench", password=b"pw") -> None:
    body = _cstr(system_id) + _cstr(password) + _cstr(b"") + b"\x34\x00\x00" + _cstr(b"")
    sock.sendall(HEADER.pack(16 + len(body), 2, 0, 1) + body)
    head = _recv(sock, 16)
    length, cid, status, _ = HEADER.unpack(head)
    _recv(sock, length - 16)
    if status:
        raise SystemExit(f"bind failed: status {status:#x}")


def _recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    return buf


def best_rate(n: int, lines: int, interval: float) -> float:
    """The highest rate the per-line interval allows for n SMS (first round at t=0)."""
    rounds = -(-n // lines)
    return n / ((rounds - 1) * interval) if interval and rounds > 1 else float("inf")


def submit_responses(buf: bytearray):
    """Statuses of the complete submit_sm_resp in ``buf`` (consumed from it)."""
    while len(buf) >= 16:
        length, cid, status, _ = HEADER.unpack_from(buf)
        if len(buf) < length:
            return
        del buf[:length]
        if cid == 0x80000004:
            yield status


def load(port: int, conns: int, window: int, seconds: float) -> tuple[int, int, float]:
    """Keep ``window`` submits in flight per connection; count OK responses."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bind(s)
        s.setblocking(False)
        state = {"buf": bytearray(), "inflight": 0, "seq": 1, "ok": 0, "err": 0}
        sel.register(s, selectors.EVENT_READ, state)
        socks.append((s, state))
    text = b"benchmark message with a typical length of about sixty chars"
    t0 = time.monotonic()
    end = t0 + seconds

    def top_up(s, st):
        out = bytearray()
        while st["inflight"] < window:
            st["seq"] += 1
            out += submit_pdu(st["seq"], text)
            st["inflight"] += 1
        if out:
            s.setblocking(True)
            s.sendall(out)
            s.setblocking(False)

    for s, st in socks:
        top_up(s, st)
    def read(key, counting=True):
        s, st = key.fileobj, key.data
        data = s.recv(65536)
        if not data:
            raise SystemExit("server closed a connection")
        st["buf"] += data
        for status in submit_responses(st["buf"]):
            st["inflight"] -= 1
            if counting:
                st["ok" if status == 0 else "err"] += 1
        return s, st

    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.5):
            s, st = read(key)
            if time.monotonic() < end:
                top_up(s, st)
    elapsed = time.monotonic() - t0
    # drain what is still in flight so the next run starts clean
    deadline = time.monotonic() + 10
    while any(st["inflight"] for _, st in socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            read(key, counting=False)
    for s, _ in socks:
        s.close()
    ok = sum(st["ok"] for _, st in socks)
    err = sum(st["err"] for _, st in socks)
    return ok, err, elapsed


def start_server(data_dir, lines, interval):
    proc = subprocess.Popen([sys.executable, __file__, "--serve", data_dir, "--lines", str(lines),
                             "--interval", str(interval)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=ROOT)
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


def ask_report(proc):
    proc.stdin.write(b"report\n")
    proc.stdin.flush()
    sent, gap, commits = proc.stdout.readline().decode().split()[1:]
    return int(sent), float(gap), int(commits)


def stop_server(proc):
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve")
    ap.add_argument("--serve-sim")
    ap.add_argument("--link-dir")
    ap.add_argument("--sim-messages", type=int, default=320)
    ap.add_argument("--sim-interval", type=float, default=1.0)
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--lines", type=int, default=32)
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--e2e-messages", type=int, default=640)
    ap.add_argument("--e2e-interval", type=float, default=0.5)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.lines, args.interval)
        return
    if args.serve_sim:
        serve_sim(args.serve_sim, args.link_dir, args.lines, args.interval)
        return
    with tempfile.TemporaryDirectory() as tmp:
        # Durable submit_sm/s: no lines, so the queue only stores.
        for window in (10, 50):
            d = os.path.join(tmp, f"w{window}")
            os.makedirs(d)
            proc, port = start_server(d, 0, 0.0)
            try:
                ok, err, elapsed = load(port, args.conns, window, args.seconds)
                _, _, commits = ask_report(proc)
            finally:
                stop_server(proc)
            print(f"smpp_durable_submit_per_s_w{window}: {ok / elapsed:.0f} submit_sm/s "
                  f"({args.conns} connections, {err} refused, {commits} commits, "
                  f"{ok / max(commits, 1):.1f} per commit)")
        # End to end through 32 lines with the per-line interval.
        d = os.path.join(tmp, "e2e")
        os.makedirs(d)
        proc, port = start_server(d, 32, args.e2e_interval)
        try:
            per_conn = args.e2e_messages // args.conns
            t0 = time.monotonic()
            ok, err, _ = load_count(port, args.conns, 10, per_conn)
            sent = 0
            while sent < ok and time.monotonic() - t0 < 300:
                time.sleep(0.2)
                sent, gap, _ = ask_report(proc)
            elapsed = time.monotonic() - t0
        finally:
            stop_server(proc)
        ceiling = best_rate(sent, 32, args.e2e_interval)
        print(f"smpp_e2e_sms_per_s: {sent / elapsed:.1f} sms/s ({sent} of {ok} accepted sent "
              f"through 32 lines, at most {ceiling:.0f}/s at {args.e2e_interval} s interval)")
        print(f"smpp_e2e_shortest_line_gap: {gap:.3f} s (interval {args.e2e_interval} s)")
        if not args.skip_sim:
            d = os.path.join(tmp, "sim")
            os.makedirs(d)
            sim_e2e(args.sim_messages, 32, args.sim_interval, d)
        print("jasmin: not measured (its SMPP server needs RabbitMQ and Redis)")


def load_count(port, conns, window, per_conn):
    """Submit exactly ``per_conn`` messages on each connection."""
    total_ok = total_err = 0
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        bind(s)
        socks.append(s)
    for s in socks:
        sent = got = 0
        buf = bytearray()
        while got < per_conn:
            while sent < per_conn and sent - got < window:
                sent += 1
                s.sendall(submit_pdu(sent + 1, b"end to end"))
            buf += s.recv(65536)
            for status in submit_responses(buf):
                got += 1
                total_ok += status == 0
                total_err += status != 0
        s.close()
    return total_ok, total_err, 0.0


if __name__ == "__main__":
    main()
