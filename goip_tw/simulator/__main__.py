"""``python -m goip_tw.simulator --modules 2 --slots 4``

Runs simulated modules, prints their pty paths and SIM numbers, and serves the
JSON control interface on 127.0.0.1 (``--control-port``, 0 = any free port).
"""

from __future__ import annotations

import argparse
import json
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m goip_tw.simulator",
                                description="Simulated GSM/LTE modules on pseudo-terminals.")
    p.add_argument("--modules", type=int, default=2, help="number of modules (1-32)")
    p.add_argument("--slots", type=int, default=4, help="SIM slots per module (1-4)")
    p.add_argument("--dialect", choices=("quectel", "simcom", "huawei", "mixed"),
                   default="quectel",
                   help="AT dialect (Quectel EC25, SIMCom SIM7600, Huawei ME909s); "
                        "mixed alternates Quectel and SIMCom")
    p.add_argument("--control-port", type=int, default=8765,
                   help="JSON control port on 127.0.0.1 (0 = any free port, -1 = off)")
    p.add_argument("--link-dir", default=None,
                   help="make stable symlinks moduleN-at / moduleN-audio here")
    p.add_argument("--reg-delay", type=float, default=2.0,
                   help="seconds from SIM ready to network registration")
    p.add_argument("--json", action="store_true", help="print the module list as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.modules <= 32:
        p.error("--modules must be 1..32")
    if not 1 <= args.slots <= 4:
        p.error("--slots must be 1..4")
    if not -1 <= args.control_port <= 65535:
        p.error("--control-port must be -1..65535")
    return args


def build(reactor, args):
    from .network import Network

    network = Network(reactor, link_dir=args.link_dir, reg_delay=args.reg_delay)
    for i in range(args.modules):
        dialect = args.dialect
        if dialect == "mixed":
            dialect = "quectel" if i % 2 == 0 else "simcom"
        network.add_module(dialect, args.slots)
    network.add_demo_phones()
    return network


def describe_lines(network, control_port=None) -> list[str]:
    lines = []
    for m in network.modules:
        sim = m.sim
        lines.append(f"module {m.number} ({m.dialect}, IMEI {m.imei}): at {m.at_path} "
                     f"audio {m.audio_path} number {sim.msisdn if sim else '-'}")
    lines.append(f"echo test number: {network.echo_number}")
    lines.append(f"sms echo number: {network.sms_echo_number}")
    if control_port is not None:
        lines.append(f"control: http://127.0.0.1:{control_port}/")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from .control import listen_control

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    network = build(reactor, args)
    network.start()
    port = None
    if args.control_port >= 0:
        port = listen_control(reactor, network, args.control_port)
    bound = port.getHost().port if port is not None else None
    if args.json:
        print(json.dumps(network.describe()["modules"]), flush=True)
    for line in describe_lines(network, bound):
        print(line, flush=True)

    def shutdown():
        network.stop()
        if port is not None:
            return port.stopListening()

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
