#!/usr/bin/env python
"""Calls end to end under load (issue 7): 32 simulated lines, calls set up and torn
down continuously by a SIP load generator.

Three processes, so each figure belongs to one of them:

* the simulator (``python -m goip_tw.simulator --modules 32``): the mobile network,
  with a remote phone that answers at once and echoes;
* the gateway (this script with ``--gateway``): Modem objects on the simulator's
  ptys, the SIP service, the call controller and the media engine (RTP <-> voice
  port bridges, G.711);
* the load generator (this script's main process): our own SIP stack as a UAC,
  keeping ``--concurrent`` calls up (each held ``--hold`` seconds, then BYE), with
  an RTP reflector per call that sends back every packet the gateway sends, so
  media flows both ways through the gateway.

Figures (``name: value unit``): setup latency INVITE -> 200 OK p50/p99, calls per
second sustained, failed calls, and the gateway's CPU per active call (the
gateway process's user+system time over the measured window, divided by the mean
number of active calls).  The measured window starts after a warm-up.

The setup latency is now about 0.5 s, the simulated network's own delay from ATD
to the called phone (network.py): the modem layer reads AT+CLCC at once on every
call-state URC the driver switched on (Quectel ``+QIND: "ccinfo"``, SIMCom
``+CLCC``, Huawei ``^CONN``/``^CEND``), so the answer is seen as it happens and the
1 s AT+CLCC poll is only the fallback for modules that report nothing.  What stays
above 0.5 s is our own path: SIP, controller, AT dialling (a ``--quick`` run on
the shared 2-core machine: p50 506 ms, p99 521 ms).
``--call-poll`` still changes that fallback poll, to measure a silent module.

Run: ``.venv/bin/python bench/calls.py [--seconds 30] [--concurrent 32] [--hold 3]``
(``--quick`` for a 10 s run).  Each call is replaced ``--gap`` seconds after it
ends; with a zero gap the generator outruns the lines' release and measures the
F-424 "no free line" answer instead.  The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

#: One remote phone per concurrent call (a simulated phone takes one call at a time).
PHONES = [f"+12125552{n:03d}" for n in range(200)]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_udp_port() -> int:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------
# the gateway process


def run_gateway(args) -> int:
    from twisted.internet import defer, reactor
    from twisted.internet.serialport import SerialPort

    from goip_tw.calls.controller import CallController
    from goip_tw.calls.linestate import LineStates
    from goip_tw.calls.modemside import ModemLines
    from goip_tw.calls.sipside import SipSide
    from goip_tw.config.sections.calls import CallsConfig
    from goip_tw.config.sections.media import MediaConfig
    from goip_tw.config.sections.sip import SipConfig
    from goip_tw.config.sections.voip import VoipConfig
    from goip_tw.events import EventBus
    from goip_tw.media.service import MediaService
    from goip_tw.modem.api import Modem
    from goip_tw.modem.at import AtEngine
    from goip_tw.modem.audio import open_voice_port
    from goip_tw.sip.service import SipService

    if os.environ.get("BENCH_DEBUG"):
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)],
                                         redirectStandardIO=False)
    if args.call_poll:
        Modem.call_poll_interval = args.call_poll
    voice = {}
    lines = ModemLines(reactor)
    media = MediaService(reactor, MediaConfig(codecs=("PCMU",), rtp_timeout=0),
                         voice_port_of=voice.get, interface="127.0.0.1")
    sip = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=args.sip_port,
                                        tcp=False, keepalive_mode="off"),
                     VoipConfig(outgoing_auth="none"), args.lines)
    side = SipSide(sip, media)
    ctl = CallController(clock=reactor, sip=side, lines=lines, media=media,
                         line_states=LineStates(EventBus(), reactor),
                         calls_config=lambda: CallsConfig(no_answer_timeout=10))
    lines.controller = side.controller = ctl
    sip.set_call_handler(side)

    @defer.inlineCallbacks
    def start():
        for n in range(1, args.lines + 1):
            engine = AtEngine(reactor, name=f"line{n}")
            SerialPort(engine, os.path.join(args.links, f"module{n}-at"), reactor,
                       baudrate=115200)
            voice[n] = open_voice_port(reactor, os.path.join(args.links, f"module{n}-audio"),
                                       name=f"voice{n}")
            modem = Modem(engine, reactor, name=f"line{n}")
            yield modem.initialise()
            yield modem.read_sim_identity()
            for _ in range(100):
                reg = yield modem.registration()
                if reg.registered:
                    break
                yield deferLater(0.1)
            lines.add_line(n, modem)
        sip.startService()
        media.startService()
        print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)

    def deferLater(s):
        from twisted.internet import task
        return task.deferLater(reactor, s, lambda: None)

    def failed(f):
        print(json.dumps({"error": f.getErrorMessage()}), flush=True)
        reactor.stop()

    reactor.callWhenRunning(lambda: start().addErrback(failed))
    reactor.run()
    return 0


# ---------------------------------------------------------------------------------
# the load generator


def run_load(args, gw_pid, gw_port) -> dict:
    from twisted.internet import reactor, task
    from twisted.internet.protocol import DatagramProtocol

    from goip_tw.config.sections.sip import SipConfig
    from goip_tw.config.sections.voip import VoipConfig
    from goip_tw.sip import ua
    from goip_tw.sip.service import SipService

    class Reflector(DatagramProtocol):
        def datagramReceived(self, data, addr):
            self.transport.write(data, addr)

    uac = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=0, tcp=False,
                                        keepalive_mode="off", ict_timeout=8.0),
                     VoipConfig(outgoing_auth="none"), 1)
    uac.startService()
    free = list(PHONES[:2 * args.concurrent])
    state = {"active": 0, "latencies": [], "done": 0, "failed": 0, "started": 0,
             "samples": [], "measuring": False}
    t0 = time.monotonic()
    warmup = args.warmup
    end = t0 + warmup + args.seconds

    def sdp(port):
        return (f"v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\n"
                f"t=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=ptime:20\r\na=sendrecv\r\n").encode()

    def place():
        if time.monotonic() >= end:
            return
        if not free:
            reactor.callLater(0.1, place)
            return
        rtp = reactor.listenUDP(0, Reflector(), interface="127.0.0.1")
        sent = time.monotonic()
        measured = sent >= t0 + warmup
        number = free.pop(0)
        leg = uac.place_call(f"{number[1:]}@127.0.0.1:{gw_port}", caller="bench",
                             local_sdp=sdp(rtp.getHost().port))
        state["started"] += 1
        state["active"] += 1
        info = {"answered": False}

        def finished():
            state["active"] -= 1
            rtp.stopListening()
            # the phone is free again once the network has released the call; the
            # next call follows after --gap (a line needs a moment to release)
            reactor.callLater(1.0, free.append, number)
            reactor.callLater(args.gap, place)

        def listener(event):
            if isinstance(event, ua.Answered) and not info["answered"]:
                info["answered"] = True
                if measured:
                    state["latencies"].append(time.monotonic() - sent)
                reactor.callLater(args.hold, leg.hangup)
            elif isinstance(event, ua.HungUp):
                if measured:
                    state["done"] += 1
                finished()
            elif isinstance(event, ua.Failed):
                if measured:
                    state["failed"] += 1
                    codes = state.setdefault("codes", {})
                    codes[event.code] = codes.get(event.code, 0) + 1
                    if os.environ.get("BENCH_DEBUG"):
                        print("failed", number, event.code, event.reason, file=sys.stderr)
                finished()
        leg.listener = listener

    def sample():
        now = time.monotonic()
        if now >= t0 + warmup and not state["measuring"]:
            state["measuring"] = True
            state["cpu0"], state["wall0"] = cpu_seconds(gw_pid), now
        if state["measuring"]:
            state["samples"].append(state["active"])
        if now >= end:
            state["cpu1"], state["wall1"] = cpu_seconds(gw_pid), now
            loop.stop()
            reactor.callLater(args.hold + 2, reactor.stop)

    for i in range(args.concurrent):
        reactor.callLater(i * args.ramp / args.concurrent, place)
    loop = task.LoopingCall(sample)
    reactor.callWhenRunning(loop.start, 0.25)
    reactor.run()
    return state


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--gateway", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--links", help=argparse.SUPPRESS)
    p.add_argument("--sip-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--lines", type=int, default=32)
    p.add_argument("--concurrent", type=int, default=32)
    p.add_argument("--hold", type=float, default=3.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--ramp", type=float, default=2.0)
    p.add_argument("--gap", type=float, default=1.0,
                   help="seconds between a call's end and its replacement")
    p.add_argument("--call-poll", type=float, default=0.0,
                   help="AT+CLCC poll interval of the modems (0 = the modem layer's "
                        "default); the module's answer is only seen at the next poll")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.gateway:
        return run_gateway(args)
    if args.quick:
        args.seconds, args.warmup = 10.0, 3.0

    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="goip-bench-calls-") as links:
        sim = subprocess.Popen(
            [py, "-m", "goip_tw.simulator", "--modules", str(args.lines), "--slots", "1",
             "--link-dir", links, "--reg-delay", "0.2", "--control-port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        gw = None
        try:
            control = None
            for line in sim.stdout:
                if line.startswith("control: "):
                    control = line.split()[1]
                    break
            if control is None:
                raise SystemExit("simulator did not start")
            for number in PHONES[:2 * args.concurrent]:
                req = urllib.request.Request(
                    control + "phones", method="POST",
                    data=json.dumps({"number": number, "answer_after": 0,
                                     "audio": "echo"}).encode(),
                    headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=5).read()
            gw_port = free_udp_port()
            gw = subprocess.Popen(
                [py, os.path.abspath(__file__), "--gateway", "--links", links,
                 "--sip-port", str(gw_port), "--lines", str(args.lines),
                 "--call-poll", str(args.call_poll)],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
                stderr=None if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL)
            ready = json.loads(gw.stdout.readline() or "{}")
            if not ready.get("ready"):
                raise SystemExit(f"gateway did not start: {ready}")
            state = run_load(args, gw.pid, gw_port)
        finally:
            for proc in (gw, sim):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()

    lat = [x * 1000 for x in state["latencies"]]
    window = state["wall1"] - state["wall0"]
    mean_active = sum(state["samples"]) / max(1, len(state["samples"]))
    cpu = state["cpu1"] - state["cpu0"]
    print(f"calls_lines: {args.lines} lines")
    if args.call_poll:
        print(f"calls_clcc_poll: {args.call_poll * 1000:.0f} ms")
    print(f"calls_concurrent_target: {args.concurrent} calls")
    print(f"calls_setup_latency_p50: {percentile(lat, 50):.1f} ms")
    print(f"calls_setup_latency_p99: {percentile(lat, 99):.1f} ms")
    print(f"calls_per_second: {state['done'] / window:.2f} calls/s")
    print(f"calls_failed: {state['failed']} calls")
    for code, count in sorted(state.get("codes", {}).items()):
        print(f"calls_failed_{code}: {count} calls")
    print(f"calls_mean_active: {mean_active:.1f} calls")
    print(f"calls_gateway_cpu: {100 * cpu / window:.1f} % of one core")
    if mean_active:
        print(f"calls_cpu_per_active_call: {100 * cpu / window / mean_active:.2f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
