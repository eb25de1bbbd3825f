"""A minimal gateway process for the received-SMS SIGKILL test: store + InboundSms +
modem lines on the simulator's ptys.

``python tests/sms/inbound_crash_runner.py DATA_DIR LINK_DIR MODULES [--kill-after K]``

Every received SMS goes through ``InboundSms.handler_for`` exactly as the gateway
wires it. With ``--kill-after K`` the process SIGKILLs itself right after the K-th
store commit, before the modem layer deletes the module's copy: the worst moment
for exactly-once. Prints ``STORED <n>`` after each commit.
"""

from __future__ import annotations

import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def main(argv):
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from goip_tw.config.sections.modems import ModemLineConfig, ModemsConfig
    from goip_tw.modem.line import LineService
    from goip_tw.sms.inbound import InboundSms
    from goip_tw.store import migrations
    from goip_tw.store.sqlite import SqliteStore

    data_dir, link_dir, modules = argv[0], argv[1], int(argv[2])
    kill_after = int(argv[4]) if len(argv) > 4 and argv[3] == "--kill-after" else 0
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(open(os.path.join(data_dir, "inbound-runner.log"), "a"))],
        redirectStandardIO=False)
    migrations.AREA_MODULES = ("goip_tw.sms.schema", "goip_tw.sms.inbound_schema")
    path = os.path.join(data_dir, "gw.sqlite")
    store = SqliteStore(path, reactor=reactor)
    inbound = InboundSms(store, reactor, reassembly_timeout=60.0)
    stored = {"n": 0}

    def say(text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def make_handler(line):
        handle = inbound.handler_for(line)

        def handler(number, sms):
            def committed(outcome):
                if not outcome.duplicate:
                    stored["n"] += 1
                    say(f"STORED {stored['n']}")
                    if kill_after and stored["n"] >= kill_after:
                        os.kill(os.getpid(), signal.SIGKILL)
                return outcome

            return handle(sms).addCallback(committed)

        return handler

    # A SIGKILL can fall between the deletes of one long message's parts: after the
    # restart the parts left on the SIM wait in the modem's reassembly for the part
    # already deleted, and are resolved as the stored message's duplicate when it
    # times out.  The default 300 s is longer than the test waits.
    options = ModemsConfig(registration_poll=2.0, watchdog_interval=30.0,
                           reassembly_timeout=15.0)
    lines = []
    for n in range(1, modules + 1):
        cfg = ModemLineConfig(port=os.path.join(link_dir, f"module{n}-at"), name=f"line{n}")
        ls = LineService(n, cfg, options, reactor=reactor)
        ls.sms_handler = make_handler(n)
        lines.append(ls)

    def start():
        d = store.start()

        def go(_):
            say("READY")
            for ls in lines:
                ls.startService()
            return inbound.start()

        d.addCallback(go)

    reactor.callWhenRunning(start)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
