"""Line service through simulator ptys: bring-up, hot plug, watchdog, PIN, SIM switch."""

import os
import stat

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from goip_tw.config.sections.modems import ModemLineConfig, ModemsConfig
from goip_tw.modem import model
from goip_tw.modem.hotplug import InotifyWatcher
from goip_tw.modem.line import LineService, TRANSITIONS
from goip_tw.modem.simswitch import GpioSwitch, SimulatorSwitch, SwitchError
from goip_tw.modem.service import ModemsService

from .simhelp import PHONE, make_network, sleep, wait_until

FAST = ModemsConfig(watchdog_interval=0.3, registration_poll=0.3, sms_poll=5,
                    reassembly_timeout=30, replug_poll=0.2)
FAST_TIMEOUTS = {"quick": 0.3, "default": 0.5, "sim": 0.5, "network": 1.0, "reset": 0.5,
                 "late_grace": 0.05}


class Events:
    def __init__(self):
        self.items = []

    def publish(self, topic, **fields):
        self.items.append((topic, fields))


class EventLog:
    def __init__(self):
        self.rows = []

    def append(self, source, event, *, level="info", line=None, **detail):
        self.rows.append((source, event, level, line, detail))
        return defer.succeed(None)


@pytest.fixture
def rigs(tmp_path):
    created = []
    net = make_network(link_dir=str(tmp_path / "by-id"))
    watcher = InotifyWatcher(reactor)
    svc = ModemsService(watcher)

    def add(dialect="quectel", options=FAST, pin_cfg="", start=True, by_imei=False, **kw):
        module = net.add_module(dialect, **kw)
        n = module.number
        port = f"imei:{module.imei}" if by_imei else str(tmp_path / "by-id" / f"module{n}-at")
        voice = "" if by_imei else str(tmp_path / "by-id" / f"module{n}-audio")
        if by_imei:
            import attrs
            options = attrs.evolve(options, scan_dir=str(tmp_path / "by-id"))
        cfg = ModemLineConfig(port=port, voice_port=voice,
                              pin=pin_cfg, sim_switch="simulator", sim_slots=len(module.slots))
        line = LineService(n, cfg, options, reactor=reactor, events=Events(),
                           event_log=EventLog(), watcher=watcher,
                           switch=SimulatorSwitch(module.switch_slot, len(module.slots)),
                           engine_timeouts=FAST_TIMEOUTS, claims=svc.claims)
        line.module = module
        line.seen = []
        line.add_observer(line.seen.append)
        svc.add_line(line)
        created.append(line)
        return line

    net.start()
    yield net, svc, add
    pytest_twisted.blockon(svc.stopService()) if svc.running else None
    net.stop()
    watcher.stop()


def states(line):
    return [s for s, _ in line.history]


@pytest_twisted.inlineCallbacks
def test_line_comes_up_and_reports_json(rigs):
    net, svc, add = rigs
    line = add()
    svc.startService()
    yield wait_until(lambda: line.state == "registered" and line.operator is not None,
                     what="registered")
    assert states(line)[:3] == ["initialising", "searching", "registered"]
    st = line.status()
    assert st["state"] == "registered" and st["model"] == "EC25"
    assert st["imei"] == line.module.imei and st["iccid"] == line.module.sim.iccid
    assert st["imsi"] == line.module.sim.imsi and st["own_number"] == line.module.sim.msisdn
    assert st["technology"] == "4G" and st["signal"] == line.module.rssi
    assert st["operator_code"] == line.module.serving and st["sim_slot"] == "A"
    assert st["volte"] is True  # read again once registered (IMS needs LTE)
    assert st["key"].endswith("module1-at") and "/dev/pts" not in st["key"]
    assert line.voice is not None and not line.voice.closed
    assert ("line.state", {"line": 1, "state": "registered", "previous": "searching",
                           "reason": "registered 4G"}) in line.events.items
    assert svc.statuses() == [line.status()]


@pytest_twisted.inlineCallbacks
def test_absent_then_plugged_in_via_inotify(rigs):
    net, svc, add = rigs
    line = add()
    line.module.stop()
    assert not os.path.lexists(line.cfg.port)  # gone with the device, as udev does
    svc.startService()
    yield sleep(0.05)
    assert line.state == "absent"
    line.module.start()
    yield wait_until(lambda: line.state == "registered", what="registered after plug")


@pytest_twisted.inlineCallbacks
def test_unplug_during_call_and_replug_keeps_line(rigs):
    net, svc, add = rigs
    net.add_remote_phone(PHONE, answer_after=0.05)
    line = add()
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    line.modem.call_poll_interval = 0.05
    yield line.modem.dial(PHONE)
    yield wait_until(lambda: any(c.state == "active" for c in line.modem.calls))
    old_modem = line.modem
    line.module.unplug()
    yield wait_until(lambda: line.state == "absent", what="absent")
    ended = [e for e in line.seen if isinstance(e, model.CallEnded)]
    assert ended and ended[0].text == "module lost"
    assert line.modem is None and line.status()["state"] == "absent"
    line.module.start()
    yield wait_until(lambda: line.state == "registered", what="back")
    assert line.modem is not old_modem


@pytest_twisted.inlineCallbacks
def test_unplug_during_sms_send_then_resend_after_replug(rigs):
    """The caller learns exactly which parts got out; nothing is sent twice."""
    from goip_tw.modem.smsrx import SmsSendError
    net, svc, add = rigs
    phone = net.add_remote_phone(PHONE)
    line = add()
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    line.module.faults.apply("slow", delay=0.3)
    d = line.modem.send_sms(PHONE, "y" * 400)
    yield sleep(0.1)
    line.module.unplug()
    with pytest.raises(SmsSendError) as info:
        yield d
    sent = len(info.value.references)
    assert sent < 3 and len(phone.received_sms) == 0  # incomplete message not delivered
    line.module.faults.apply("clear")
    line.module.start()
    yield wait_until(lambda: line.state == "registered", what="back")
    refs = yield line.modem.send_sms(PHONE, "y" * 400)
    assert len(refs) == 3
    yield wait_until(lambda: phone.received_sms, what="delivered")
    assert [m["text"] for m in phone.received_sms] == ["y" * 400]


@pytest_twisted.inlineCallbacks
def test_watchdog_escalates_and_gives_up(rigs):
    net, svc, add = rigs
    line = add()
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    line.module.faults.apply("silent", on=True)
    yield wait_until(lambda: line.state == "failed", timeout=15, what="gave up")
    events = [r[1] for r in line.event_log.rows]
    for step in ("watchdog_probe", "watchdog_reset", "watchdog_reopen", "watchdog_gave_up"):
        assert step in events
    assert line.reason.startswith("watchdog gave up")
    # an operator replugs the (fixed) module: the line returns without a restart
    line.module.faults.apply("clear")
    line.module.replug()
    yield wait_until(lambda: line.state == "registered", timeout=10, what="recovered")


@pytest_twisted.inlineCallbacks
def test_watchdog_reset_recovers_a_hung_module(rigs):
    net, svc, add = rigs
    line = add()
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    line.module.faults.apply("silent", on=True)
    yield wait_until(lambda: "watchdog_reset" in [r[1] for r in line.event_log.rows],
                     timeout=10, what="reset step")
    line.module.faults.apply("clear")
    yield wait_until(lambda: line.state == "registered" and line._level == 0,
                     timeout=10, what="recovered")
    assert "watchdog_gave_up" not in [r[1] for r in line.event_log.rows]


@pytest_twisted.inlineCallbacks
def test_wrong_pin_is_not_retried_then_operator_unlocks(rigs):
    net, svc, add = rigs
    line = add(pin="1234", pin_cfg="4321")
    svc.startService()
    yield wait_until(lambda: line.state == "sim_locked", what="locked")
    left = line.module.sim.pin_left
    assert left == 2 and "rejected" in line.reason
    yield sleep(1.0)  # several watchdog / poll periods
    assert line.module.sim.pin_left == 2 and line.state == "sim_locked"
    yield line.unlock("1234")
    yield wait_until(lambda: line.state == "registered", what="registered after PIN")


@pytest_twisted.inlineCallbacks
def test_pending_pin2_neither_locks_the_line_nor_spends_pin2(rigs):
    """SIM PIN2 / SIM PUK2 (TS 27.007 8.3) leave PIN1 verified: the line comes up
    and the configured PIN (PIN1's) is never sent as PIN2."""
    net, svc, add = rigs
    line = add(pin="1234", pin_cfg="1234")
    svc.startService()
    yield wait_until(lambda: line.state == "registered", what="registered")
    card = line.module.sim
    card.demand_pin2()  # e.g. a fixed-dialling edit refused with +CME ERROR: 17
    yield line.set_enabled(False)
    yield line.set_enabled(True)  # re-initialises on the same, still powered module
    yield wait_until(lambda: any(r[1] == "pin2_wanted" for r in line.event_log.rows),
                     what="PIN2 noticed")
    yield wait_until(lambda: line.state == "registered", what="registered with PIN2 pending")
    assert card.pin2_left == 3 and card.pin2_wanted and card.pin_left == 3
    assert "sim_locked" not in states(line)


@pytest_twisted.inlineCallbacks
def test_sim_switch_reinitialises(rigs):
    net, svc, add = rigs
    line = add(slots=2)
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    first = line.status()["iccid"]
    yield line.switch_sim(1)
    yield wait_until(lambda: line.state == "registered" and line.status()["iccid"] != first,
                     what="re-registered with slot B")
    assert line.status()["sim_slot"] == "B"
    assert line.status()["iccid"] == line.module.slots[1].iccid
    with pytest.raises(SwitchError):
        yield line.switch.select(5)


@pytest_twisted.inlineCallbacks
def test_sms_handler_gets_line_number(rigs):
    net, svc, add = rigs
    phone = net.add_remote_phone(PHONE)
    line = add()
    got = []
    line.sms_handler = lambda n, sms: got.append((n, sms.text)) or defer.succeed(None)
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    phone.send_sms(line.module.sim.msisdn, "to line one")
    yield wait_until(lambda: got, what="sms")
    assert got == [(1, "to line one")]


def test_transition_table_is_closed():
    for state, targets in TRANSITIONS.items():
        assert targets <= set(TRANSITIONS)


@pytest_twisted.inlineCallbacks
def test_gpio_switch_runs_gpioset(tmp_path):
    log = tmp_path / "calls"
    fake = tmp_path / "gpioset"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n[ \"$3\" = \"7=1\" ] && [ \"$2\" = \"5=1\" ] && exit 3\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    sw = GpioSwitch(reactor, "gpiochip1", (5, 7), gpioset=str(fake))
    assert sw.slots == 4
    assert (yield sw.select(2)) == 2
    assert log.read_text().split("\n")[0] == "gpiochip1 5=0 7=1"
    with pytest.raises(SwitchError, match="exited 3"):
        yield sw.select(3)
    with pytest.raises(SwitchError):
        yield sw.select(4)


@pytest_twisted.inlineCallbacks
def test_quectel_qdsim_switch(rigs):
    from goip_tw.modem.simswitch import QdsimSwitch
    net, svc, add = rigs
    line = add(slots=2)
    line.switch = QdsimSwitch(lambda: line.modem)
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    yield line.switch_sim(1)
    assert line.module.active_slot == 1
    yield wait_until(lambda: line.state == "registered"
                     and line.status()["iccid"] == line.module.slots[1].iccid,
                     what="registered on slot B")
    with pytest.raises(SwitchError):
        yield line.switch.select(2)


@pytest_twisted.inlineCallbacks
def test_disable_and_enable_at_run_time(rigs):
    net, svc, add = rigs
    line = add()
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    yield line.set_enabled(False)
    assert line.state == "absent" and line.reason == "disabled" and line.modem is None
    assert line.status()["enabled"] is False
    yield sleep(0.3)  # replug poll must not reopen a disabled line
    assert line.modem is None
    yield line.set_enabled(True)
    yield wait_until(lambda: line.state == "registered", what="enabled again")


@pytest_twisted.inlineCallbacks
def test_reconfigure_restarts_in_place(rigs):
    import attrs
    net, svc, add = rigs
    line = add()
    seen = []
    line.add_observer(seen.append)
    svc.startService()
    yield wait_until(lambda: line.state == "registered")
    yield line.reconfigure(attrs.evolve(line.cfg, name="renamed"), line.options)
    yield wait_until(lambda: line.state == "registered", what="back after reconfigure")
    assert line.cfg.name == "renamed"
    assert any(isinstance(e, model.LineStateChanged) for e in seen)


@pytest_twisted.inlineCallbacks
def test_line_found_by_imei_and_after_replug(rigs):
    net, svc, add = rigs
    other = net.add_module("simcom")  # another modem in the same directory
    line = add(by_imei=True)
    yield wait_until(lambda: os.path.exists(str(line.options.scan_dir) + "/module2-at"))
    svc.startService()
    yield wait_until(lambda: line.state == "registered", timeout=15, what="found by IMEI")
    st = line.status()
    assert st["key"] == f"imei:{line.module.imei}" and st["imei"] == line.module.imei
    assert st["device"].endswith(f"module{line.module.number}-at")
    assert other.imei != line.module.imei
    line.module.replug()
    yield wait_until(lambda: line.state == "absent", what="unplugged")
    yield wait_until(lambda: line.state == "registered", timeout=15, what="back by IMEI")


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", ["quectel", "simcom"])
def test_message_storage_is_selected_once_the_sim_has_finished_booting(rigs, dialect):
    """A module answers SMS commands with +CMS ERROR: 311/314 until its SIM has
    finished initialising (Quectel "+QIND: SMS DONE", SIMCom "SMS DONE"), even
    after +CPIN: READY: the storage selection is retried then, not given up, so
    a module whose default storage is the phone memory still stores on the SIM
    that the gateway lists."""
    net, svc, add = rigs
    line = add(dialect=dialect)
    line.module.stop()
    line.module.boot_delay = 0.5  # SIM and SMS ready well after our init commands
    line.module.start()
    line.module.settings.cpms = ("ME", "ME", "ME")  # a module that defaults to its memory
    svc.startService()
    yield wait_until(lambda: line.state == "registered", what="registered")
    yield wait_until(lambda: line.module.settings.cpms == ("SM", "SM", "SM"),
                     what="SIM storage selected")
