"""Received SMS through the real modem layer and the simulator's ptys: a 3-part UCS2
message with emoji and a short one are stored once, forwarded once, and a "crash"
between the store commit and the module delete leaves no duplicate."""

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.sms.forward import ForwardRules, Forwarder, sip_sender
from goip_tw.sms.inbound import InboundSms
from tests.modem.simhelp import PHONE, booted, sleep, wait_until
from tests.sms.inbound_support import Recorder, history, net, open_store  # noqa: F401
from tests.sms.test_forward_sip import FakeSip


@pytest_twisted.inlineCallbacks
def test_long_ucs2_sms_stored_once_despite_crash_before_delete(net, tmp_path):
    phone = net.add_remote_phone(PHONE)
    rig = yield booted(net, "quectel")
    store = yield open_store(tmp_path / "gw.sqlite")
    try:
        yield rig.modem.initialise()
        yield rig.modem.read_sim_identity()
        yield wait_until(lambda: rig.module.registered, what="registration")
        clock, sip = Clock(), FakeSip()
        fwd = Forwarder(store, clock, ForwardRules(sip_target="101"), {"sip": sip_sender(sip)})
        inbound = InboundSms(store, clock, planner=fwd)
        rec = Recorder()
        inbound.add_observer(rec)
        yield fwd.start()
        handle = inbound.handler_for(1)
        crashed = []

        def store_then_crash(sms):
            # stored and committed, then the process "dies" before AT+CMGD
            d = handle(sms)
            crashed.append(sms)
            return d.addCallback(lambda _: defer.fail(RuntimeError("killed before delete")))

        rig.modem.sms_handler = store_then_crash
        long_text = "你好😀 long message over three parts. " * 4
        phone.send_sms(rig.module.sim.msisdn, long_text)
        phone.send_sms(rig.module.sim.msisdn, "short one")
        yield wait_until(lambda: len(crashed) == 2, timeout=10, what="both offered")
        yield sleep(0.1)
        assert rig.module.sim.store.used >= 2  # the module kept its copies
        rig.modem.sms_handler = handle
        yield rig.modem.drain_sms()
        yield wait_until(lambda: rig.module.sim.store.used == 0, what="module store emptied")
        clock.advance(0)
        rows = yield history(store)
        assert sorted(r["text"] for r in rows) == sorted([long_text, "short one"])
        big = [r for r in rows if r["text"] == long_text][0]
        assert big["parts"] >= 3 and big["peer"].lstrip("+") == PHONE.lstrip("+")
        assert sorted(m.text for m in rec.messages) == sorted([long_text, "short one"])
        bodies = sorted(b.decode() for _, b, _ in sip.sent)
        assert bodies == sorted([f"{big['peer']}\n(L1){long_text}", f"{big['peer']}\n(L1)short one"])
        fwd.stop()
        inbound.stop()
        assert clock.getDelayedCalls() == []
    finally:
        yield store.stop()
        yield rig.close()
