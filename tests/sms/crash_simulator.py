"""``python tests/sms/crash_simulator.py --sim-store N <simulator options>``

The simulator of goip_tw.simulator for the durability test, with SIM message stores
of N entries and a ``sms_report_dropped`` network event whenever a status report
finds the store full (the simulated module then drops it).

Why: while the killed gateway is down, the modules keep storing the status reports
(AT+CNMI ds=2, TS 27.005 §3.4.1) of the parts that were already on their way.  A
real network does not lose a report on a full store (the MS answers RP-ERROR
"memory capacity exceeded" and the SMSC retries after RP-SMMA, TS 24.011 / TS
23.040 §10.3), but the simulator drops it; a store large enough for the outage
keeps the exact "every part reported" check meaningful, and the event shows when
it would not be.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def main(argv):
    size = 30
    if argv[:1] == ["--sim-store"]:
        size, argv = int(argv[1]), argv[2:]
    from goip_tw.simulator import __main__ as sim_main
    from goip_tw.simulator import at_sms

    build = sim_main.build
    original = at_sms.status_report_incoming

    def big_stores(reactor, args):
        network = build(reactor, args)
        for module in network.modules:
            for card in module.slots:
                if card is not None:
                    card.store.capacity = size
        return network

    def counted(module, hex_pdu, length):
        target = at_sms.store(module, module.settings.cpms[2])
        if module.plugged and module.settings.cnmi[3] == 2 and target.full:
            module.network.record("sms_report_dropped", module=module.number)
        return original(module, hex_pdu, length)

    sim_main.build = big_stores
    at_sms.status_report_incoming = counted
    return sim_main.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
