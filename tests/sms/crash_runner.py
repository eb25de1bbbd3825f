"""A minimal gateway process for the durability test: store + queue + modem lines.

``python tests/sms/crash_runner.py DATA_DIR LINK_DIR MODULES [--submit N]``

Opens the simulator's modules through the real modem layer (LineService on the
ptys behind ``LINK_DIR/moduleN-at``), attaches them to the SMS queue exactly as
goip_tw/sms/service.py does, and with ``--submit`` stores N messages (every fifth
one two parts long).  Prints ``ACCEPTED N`` once every submit has been acknowledged
(i.e. committed) and ``IDLE`` whenever nothing is left to send.  The test kills it
with SIGKILL mid-send and starts it again.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

RECIPIENT = "+15550199"  # not a phone of the simulated network: no replies come back


def text_for(i: int) -> str:
    base = f"crash test message {i:05d}"
    return base + " long" * 40 if i % 5 == 0 else base


def main(argv):
    from twisted.internet import defer, reactor, task
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from goip_tw.config.sections.modems import ModemLineConfig, ModemsConfig
    from goip_tw.modem.line import LineService
    from goip_tw.sms.lines import ModemSmsLine
    from goip_tw.sms.model import StatusReport, Submission
    from goip_tw.sms.queue import QueueSettings, SmsQueue
    from goip_tw.store import migrations
    from goip_tw.store.sqlite import SqliteStore

    data_dir, link_dir, modules = argv[0], argv[1], int(argv[2])
    submit = int(argv[4]) if len(argv) > 4 and argv[3] == "--submit" else 0
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(open(os.path.join(data_dir, "runner.log"), "a"))],
        redirectStandardIO=False)
    migrations.AREA_MODULES = ("goip_tw.sms.schema",)
    path = os.path.join(data_dir, "gw.sqlite")
    store = SqliteStore(path, reactor=reactor)
    queue = SmsQueue(store, reactor, settings=QueueSettings(retries=5, backoff=0.5))
    options = ModemsConfig(registration_poll=2.0, watchdog_interval=30.0)
    lines = []
    for n in range(1, modules + 1):
        cfg = ModemLineConfig(port=os.path.join(link_dir, f"module{n}-at"), name=f"line{n}")
        ls = LineService(n, cfg, options, reactor=reactor)

        def report(line, rep):
            return queue.on_status_report(StatusReport(line, rep.message_ref, rep.delivered,
                                                       rep.final, rep.status,
                                                       rep.scts.timestamp()))
        ls.report_handler = report
        ls.sms_handler = lambda line, sms: defer.succeed(None)
        ls.add_observer(lambda event: queue.line_changed())
        queue.add_line(ModemSmsLine(ls))
        lines.append(ls)

    def say(text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    @defer.inlineCallbacks
    def start():
        yield store.start()
        yield queue.startService()
        for ls in lines:
            ls.startService()
        if submit:
            ds = [queue.submit(Submission(recipient=RECIPIENT, text=text_for(i), source="test"))
                  for i in range(submit)]
            yield defer.gatherResults(ds)
            say(f"ACCEPTED {submit}")
        task.LoopingCall(check).start(0.5)

    def check():
        def counted(rows):
            if rows[0][0] == 0:
                say("IDLE")
        store.query("SELECT COUNT(*) FROM sms_message WHERE state IN ('queued', 'sending',"
                    " 'assembling')").addCallback(counted)

    reactor.callWhenRunning(start)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
