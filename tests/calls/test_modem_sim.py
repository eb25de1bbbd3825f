"""The controller driving real Modem objects over the simulator's ptys (F-106).

Every AT command crosses a real pseudo-terminal; the simulated network's remote
phones answer, are busy, reject or are unreachable.  SIP and media are the
recording fakes, so the assertions are on what the mobile side did.
"""

import select
import time

import pytest
from twisted.internet.serialport import SerialPort
from twisted.internet.testing import MemoryReactorClock

from goip_tw.calls.controller import CallController
from goip_tw.calls.interfaces import SipOffer
from goip_tw.calls.linestate import LineStates
from goip_tw.calls.modemside import ModemLines
from goip_tw.config.sections.calls import CallsConfig, LineCalls
from goip_tw.events import EventBus
from goip_tw.modem.api import Modem
from goip_tw.modem.at import AtEngine
from goip_tw.simulator import Network

from tests.simulator.conftest import count_into, track

from .fakes import FakeCdrs, FakeLeg, FakeMedia, FakeSip

ECHO = "+12125550190"


def pump(reactor, rounds=5):
    for _ in range(rounds):
        for reader in list(reactor.readers):
            if reader.fileno() >= 0:
                reader.doRead()
        for writer in list(reactor.writers):
            if writer.fileno() >= 0:
                writer.doWrite()


class SimRig:
    def __init__(self, modules=2, lines=()):
        self.reactor = r = MemoryReactorClock()
        self.network = Network(r, reg_delay=1.0, boot_delay=0.1)
        for _ in range(modules):
            self.network.add_module("quectel", 1)
        self.network.start()
        for module in self.network.modules:
            track(module.at_port).discarded = 0
        self.settle(1)
        self.log = []
        self.config = CallsConfig(lines=tuple(LineCalls(**kw) for kw in lines))
        self.lines = ModemLines(r)
        self.ports = []
        self.modems = []
        for n, module in enumerate(self.network.modules, 1):
            engine = AtEngine(r, name=f"line{n}")
            self._drain_pty()  # opening the port drops what waits: let it all arrive first
            self.ports.append(SerialPort(engine, module.at_path, r, baudrate=115200))
            self._count_engine_side(module.at_port, engine, self.ports[-1])
            modem = Modem(engine, r, name=f"line{n}")
            self.modems.append(modem)
            self.wait(modem.initialise())
            self.wait(modem.read_sim_identity())
            self.wait(modem.registration())
            self.lines.add_line(n, modem)
        self.sip = FakeSip(self.log)
        self.media = FakeMedia(self.log)
        self.cdrs = FakeCdrs()
        self.ctl = CallController(
            clock=r, sip=self.sip, lines=self.lines, media=self.media,
            line_states=LineStates(EventBus(), r), calls_config=lambda: self.config,
            cdrs=self.cdrs)
        self.lines.controller = self.ctl

    @staticmethod
    def _count_engine_side(port, engine, serial):
        """Our engine's end of the pty counts what it reads and writes, the module's
        end (``track``) the same, so a step can wait for the bytes in between."""
        count_into(port, "clients_read", engine, "dataReceived")
        count_into(port, "clients_wrote", serial, "writeSomeData", written=True)
        port.discarded = port.bytes_out - port.clients_read - port.unread_bytes()

    def in_flight(self):
        """Bytes handed to a pty that are neither read nor waiting to be read."""
        for m in self.network.modules:
            p = m.at_port
            if p is None or p.closed or not hasattr(p, "discarded"):
                continue
            if (p.bytes_out - p.discarded - p.clients_read > p.unread_bytes()
                    or p.clients_wrote > p.bytes_in or p.pending_bytes()):
                return True
        return False

    def _drain_pty(self):
        deadline = time.monotonic() + 10
        while self.in_flight() and time.monotonic() < deadline:
            fds = [r.fileno() for r in self.reactor.readers if r.fileno() >= 0]
            select.select(fds, [], [], 0.005)
            pump(self.reactor)

    def settle(self, seconds=1.0, step=0.1):
        """Advance time step by step; before each step every byte the engines and the
        modules handed to the ptys has arrived (the kernel moves them in a worker
        thread, late on a busy machine), so no timer fires on an answer in flight."""
        for _ in range(int(round(seconds / step))):
            self.reactor.advance(step)
            pump(self.reactor)
            self._drain_pty()

    def wait(self, d, seconds=5.0):
        out = []
        d.addBoth(out.append)
        for _ in range(int(seconds / 0.1)):
            if out:
                break
            self.settle(0.1)
        assert out, "no answer from the simulated module"
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]

    def offer(self, callee):
        leg = FakeLeg(self.log)
        self.ctl.offer(leg, SipOffer("101", callee, leg.call_id))
        return leg

    def close(self):
        for call in list(self.ctl.calls):
            call.end("gateway")
        self.settle(1)
        for modem in self.modems:
            modem.stop()
        for port in self.ports:
            port.loseConnection()
        self.network.stop()
        pump(self.reactor)
        self.settle(0.5)
        for modem in self.modems:
            modem.stop()


@pytest.fixture
def simrig():
    made = []

    def make(**kw):
        rig = SimRig(**kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def sip_events(log):
    return [e for e in log if e[0] == "sip"]


def test_outgoing_answered_then_sip_bye(simrig):
    rig = simrig()
    rig.network.add_remote_phone(ECHO, answer_after=2.0, audio="echo")
    leg = rig.offer(ECHO)
    rig.settle(5)
    assert sip_events(rig.log) == [("sip", "180"), ("sip", "183"), ("sip", "200")]
    assert rig.network.active_calls()
    leg.listener.leg_ended(leg, None, "BYE")
    rig.settle(2)
    assert not rig.network.active_calls()
    (cdr,) = rig.cdrs.records
    assert cdr.answered and cdr.iccid == "8900100000000000011" and cdr.line == 1


def test_outgoing_remote_hangs_up(simrig):
    rig = simrig()
    rig.network.add_remote_phone(ECHO, answer_after=1.0, hangup_after=3.0)
    rig.offer(ECHO)
    rig.settle(8)
    assert sip_events(rig.log) == [("sip", "180"), ("sip", "183"), ("sip", "200"),
                                   ("sip", "bye")]
    assert rig.cdrs.records[0].end_side == "mobile"


@pytest.mark.parametrize("behaviour,code", [
    ({"busy": True}, 486), ({"reject": True}, 603), ({"unreachable": True}, 480),
    ({"answer_after": None}, 408),
])
def test_remote_phone_failures_map_to_sip(simrig, behaviour, code):
    """F-432 cause map with the simulator's TS 24.008 causes; no answer -> 408 (F-431)."""
    rig = simrig()
    rig.config = CallsConfig(no_answer_timeout=10)
    rig.network.add_remote_phone("+12125550177", **behaviour)
    rig.offer("+12125550177")
    rig.settle(12)
    assert sip_events(rig.log)[-1] == ("sip", code)
    assert rig.cdrs.records[0].sip_code == code
    assert not rig.network.active_calls()


def test_incoming_forwarded_and_answered(simrig):
    rig = simrig(lines=[{"incoming_forward": "101", "cid_mode": "rpid"}])
    phone = rig.network.add_remote_phone("+12125550155")
    sim_number = rig.modems[0].sim.own_number
    phone.dial(sim_number)
    rig.settle(2)
    assert ("sip", "invite", "101", "+12125550155", "rpid") in rig.log
    leg = rig.sip.legs[0]
    leg.listener.leg_answered(leg)
    rig.settle(2)
    call = rig.network.active_calls()[0]
    assert call.state == "active"
    phone.hangup()
    rig.settle(2)
    assert rig.log[-1] == ("sip", "bye")
    assert rig.cdrs.records[0].direction == "in"


def states_by_number(rig):
    return {c.number: c.state for c in rig.modems[0].calls}


@pytest.mark.parametrize("mode", ["1", "2", "3"])
def test_call_waiting_with_two_remote_phones(simrig, mode):
    """F-465 over AT+CCWA/AT+CHLD on the simulated module, two remote phones."""
    rig = simrig(lines=[{"incoming_forward": "101", "call_waiting": mode}])
    rig.wait(rig.modems[0].set_call_waiting(True))
    first = rig.network.add_remote_phone("+12125550151")
    second = rig.network.add_remote_phone("+12125550152")
    sim_number = rig.modems[0].sim.own_number
    first.dial(sim_number)
    rig.settle(1)
    leg = rig.sip.legs[0]
    leg.listener.leg_answered(leg)
    rig.settle(1)
    assert states_by_number(rig) == {"+12125550151": "active"}
    second.dial(sim_number)
    rig.settle(1)
    assert states_by_number(rig) == {"+12125550151": "active", "+12125550152": "waiting"}
    if mode == "2":
        for key in "32":                       # toggle to the waiting caller
            leg.listener.leg_dtmf(leg, key)
        rig.settle(1)
    else:
        # modes 1 and 3: the waiting caller gets a SIP call of its own (waiting.py);
        # when it answers the module swaps and the first leg is held by re-INVITE
        child = rig.sip.legs[1]
        assert ("sip", "invite", "101", "+12125550152", "from") in rig.log
        assert ("sip", "hold") not in rig.log
        child.listener.leg_answered(child)
        rig.settle(1)
        assert rig.log.count(("sip", "hold")) == 1
    expected = {"+12125550151": "held", "+12125550152": "active"}
    assert states_by_number(rig) == expected
    if mode == "3":                            # 2 s later: back to the first caller
        rig.settle(2.2)
        assert states_by_number(rig) == {"+12125550151": "active", "+12125550152": "held"}
        assert rig.log.count(("sip", "hold")) == 2 and ("sip", "resume") in rig.log
        first.hangup()                         # the old call ends: retrieve the new
        rig.settle(1.5)
        assert states_by_number(rig) == {"+12125550152": "active"}
        assert rig.log.count(("sip", "resume")) == 2
        second.hangup()
    else:
        second.hangup()                        # the new call ends: resume the old
        rig.settle(1.5)
        assert states_by_number(rig) == {"+12125550151": "active"}
        if mode == "1":
            assert rig.log.count(("sip", "resume")) == 1
        first.hangup()
    rig.settle(1.5)
    assert rig.log[-1] == ("sip", "bye")
    assert not rig.network.active_calls()


def test_m1_forward_sends_callee_as_dtmf(simrig):
    """F-451 M1: the line calls the service number, and 1 s after it answers sends the
    requested callee as DTMF (AT+VTS) ending in '#'; the service phone hears them."""
    rig = simrig(lines=[{"forward_number": "M1:+12125550188"}])
    service = rig.network.add_remote_phone("+12125550188", answer_after=0.5)
    rig.offer("13012345678")
    rig.settle(1.2)
    assert service.received_dtmf == []
    rig.settle(8)
    assert "".join(service.received_dtmf) == "13012345678#"
    assert sip_events(rig.log)[-1] == ("sip", "200")


def test_module_lost_mid_call_ends_with_bye(simrig):
    """F-103: the module goes away during a call (the modem layer's port-lost path,
    ``Modem.calls_lost``): the SIP side gets a BYE at once."""
    rig = simrig()
    rig.network.add_remote_phone(ECHO, answer_after=0.5)
    rig.offer(ECHO)
    rig.settle(2)
    assert sip_events(rig.log)[-1] == ("sip", "200")
    rig.modems[0].calls_lost()
    rig.settle(0.1)
    assert sip_events(rig.log)[-1] == ("sip", "bye")
    assert rig.cdrs.records[0].end_side == "mobile"


def test_hangup_line_for_limits(simrig):
    rig = simrig()
    rig.network.add_remote_phone(ECHO, answer_after=0.5)
    rig.offer(ECHO)
    rig.settle(2)
    assert rig.ctl.hangup_line(1, "talk time used up")
    assert not rig.ctl.hangup_line(2)
    rig.settle(1)
    assert sip_events(rig.log)[-1] == ("sip", "bye")
    assert not rig.network.active_calls()
