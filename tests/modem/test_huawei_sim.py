"""The gateway's modem layer (Modem + Huawei driver) on a simulated Huawei module's ptys:
identity, registration/technology, ^RSSI, calls with ^ORIG/^CONF/^CONN/^CEND and the
end cause, DTMF, SMS in PDU mode, USSD and voice frames on the audio pty."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from goip_tw.modem import at, model
from goip_tw.modem.audio import open_voice_port
from goip_tw.simulator.audio import dominant_frequency, rms

from .simhelp import PHONE, booted, sleep, wait_until
from .test_line import rigs  # noqa: F401  (fixture)


def record_lines(module):
    """Command lines the simulated module received (to check what the driver sent)."""
    seen = []
    original = module._handle_line

    def handle(raw):
        seen.append(raw.strip())
        return original(raw)
    module._handle_line = handle
    return seen


@defer.inlineCallbacks
def up(net, **kw):
    rig = yield booted(net, "huawei", **kw)
    rig.modem.call_poll_interval = 0.05
    rig.sent = record_lines(rig.module)
    yield rig.modem.initialise()
    yield wait_until(lambda: rig.module.registered, what="registration")
    return rig


@pytest_twisted.inlineCallbacks
def test_identity_init_and_sim(net):
    rig = yield up(net)
    try:
        m, module = rig.modem, rig.module
        assert m.driver.name == "huawei"
        assert m.identity == model.Identity("huawei", "ME909s-120", "11.617.01.00.00",
                                            module.imei)
        for command in ("AT^CVOICE=0", "AT^CVOICE?", "AT^DDSETEX=2", "AT^CURC=1",
                        "AT^USSDMODE=0", "AT+CMGF=0"):
            assert command in rig.sent, command
        assert module.settings.ussdmode == 0 and module.settings.curc == 1
        sim = yield m.read_sim_identity()
        assert "AT^ICCID?" in rig.sent
        assert sim == model.SimIdentity(module.sim.iccid, module.sim.imsi, module.sim.msisdn)
        assert (yield m.pin_status()) == "READY"
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_registration_technology_from_sysinfoex(net):
    rig = yield up(net)
    try:
        reg = yield rig.modem.registration()
        assert reg.registered and reg.technology == "4G"
        assert "AT^SYSINFOEX" in rig.sent
        for act, generation in ((2, "3G"), (0, "2G"), (7, "4G")):
            rig.module.act = act
            reg = yield rig.modem.registration()
            assert reg.technology == generation
        op = yield rig.modem.operator()
        assert op.mode == "auto" and op.mccmnc == rig.module.serving
        rig.net.set_coverage(rig.module, False)
        yield wait_until(lambda: not rig.modem.last_registration.registered, what="lost")
        reg = yield rig.modem.registration()
        assert not reg.registered
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_rssi_urcs_become_signal_events(net):
    rig = yield up(net)
    try:
        rig.net.set_signal(rig.module, 9)
        yield wait_until(lambda: rig.of(model.SignalChanged), what="^RSSI event")
        assert rig.of(model.SignalChanged)[-1] == model.SignalChanged(model.Signal(9, -95))
        rig.net.set_signal(rig.module, 99)
        yield wait_until(lambda: rig.of(model.SignalChanged)[-1].signal.rssi == 99)
        assert rig.of(model.SignalChanged)[-1].signal.dbm is None
        assert (yield rig.modem.signal()) == model.Signal(99, None)
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_outgoing_call_states_dtmf_and_remote_end_cause(net):
    phone = net.add_remote_phone(PHONE, answer_after=0.3, hangup_after=0.6)
    rig = yield up(net)
    try:
        m = rig.modem
        call = yield m.dial(PHONE)
        assert call.direction == "out" and call.number == PHONE
        yield wait_until(lambda: any(c.state == "active" for c in m.calls), what="answered")
        states = [e.call.state for e in rig.of(model.CallStateChanged)]
        assert states[:2] == ["dialing", "alerting"] and "active" in states
        yield m.send_dtmf("1#")
        yield wait_until(lambda: "".join(phone.received_dtmf) == "1#", what="DTMF at phone")
        yield wait_until(lambda: rig.of(model.CallEnded), what="remote hang-up")
        ended = rig.of(model.CallEnded)[0]
        assert ended.cause == 16 and ended.call.number == PHONE and m.calls == ()
        assert "AT+CEER" not in rig.sent  # the cause came with ^CEND
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("behaviour, cause", [({"busy": True}, 17), ({"reject": True}, 21)])
def test_failed_outgoing_call_cause_from_cend(net, behaviour, cause):
    net.add_remote_phone(PHONE, **behaviour)
    rig = yield up(net)
    try:
        yield rig.modem.dial(PHONE)
        yield wait_until(lambda: rig.of(model.CallEnded), what="call failed")
        assert rig.of(model.CallEnded)[0].cause == cause
        assert rig.modem.calls == () and "AT+CEER" not in rig.sent
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_incoming_answer_dtmf_receive_local_hangup_and_reject(net):
    phone = net.add_remote_phone(PHONE)
    rig = yield up(net)
    try:
        m = rig.modem
        phone.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: rig.of(model.IncomingCall), what="incoming")
        inc = rig.of(model.IncomingCall)[0]
        assert inc.call.number == PHONE and not inc.waiting
        yield m.answer()
        yield wait_until(lambda: any(c.state == "active" for c in m.calls), what="active")
        phone.send_dtmf("5*")
        yield wait_until(lambda: "".join(e.digit for e in rig.of(model.DtmfReceived)) == "5*",
                         what="^DDTMF digits")
        yield m.hangup()
        yield wait_until(lambda: rig.of(model.CallEnded), what="ended")
        assert rig.of(model.CallEnded)[0].cause == 16
        phone.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: len(rig.of(model.IncomingCall)) == 2, what="second call")
        yield m.hangup()  # reject while ringing: the caller hears busy
        yield wait_until(lambda: len(rig.of(model.CallEnded)) == 2, what="rejected")
        assert rig.of(model.CallEnded)[1].cause == 17
        assert net.calls[-1].cause[0] == 17
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_voice_frames_on_the_audio_pty_for_every_call(net):
    net.add_remote_phone(PHONE, answer_after=0.05, audio="tone:1000")
    echo = net.add_remote_phone("+15550009", answer_after=0.05, audio="echo")
    rig = yield up(net)
    voice = open_voice_port(reactor, rig.module.audio_path)
    try:
        for number, check in ((PHONE, "tone"), ("+15550009", "echo")):
            yield rig.modem.dial(number)
            yield wait_until(lambda: any(c.state == "active" for c in rig.modem.calls))
            voice.clear()
            frames = []
            sent = bytes.fromhex("d007") * 160  # a constant 2000 sample

            def grab():
                f = voice.read_frame()
                if f is not None:
                    frames.append(f)
                voice.write_frame(sent)
                return len(frames) >= 10
            yield wait_until(grab, timeout=5, step=0.02, what=f"frames ({check})")
            if check == "tone":
                pcm = b"".join(frames[-5:])
                assert rms(pcm) > 1000 and 900 < dominant_frequency(pcm) < 1100
            else:
                yield wait_until(lambda: echo.frames_heard >= 5, what="uplink at phone")
                assert sent in bytes(echo.heard)
            assert rig.sent.count("AT^DDSETEX=2") >= 2  # init + this call
            yield rig.modem.hangup()
            yield wait_until(lambda: rig.modem.calls == () and not rig.module.settings.pcm,
                             what="call over, routing off")
        assert rig.sent.count("AT^DDSETEX=2") == 3
    finally:
        voice.close()
        yield rig.close()
        yield wait_until(lambda: voice.closed)


@pytest_twisted.inlineCallbacks
def test_sms_pdu_send_with_report_and_receive(net):
    phone = net.add_remote_phone(PHONE)
    rig = yield up(net)
    try:
        yield rig.modem.read_sim_identity()
        text = "Huawei €uro " + "y" * 170
        refs = yield rig.modem.send_sms(PHONE, text, status_report=True)
        assert len(refs) == 2
        yield wait_until(lambda: phone.received_sms and phone.received_sms[-1]["text"] == text,
                         what="phone got SMS")
        yield wait_until(lambda: rig.reports, what="status report")
        assert rig.reports[0].message_ref in refs and rig.reports[0].delivered
        emoji = "Grüße 😀 " * 12
        phone.send_sms(rig.module.sim.msisdn, emoji)
        yield wait_until(lambda: rig.sms, what="SMS received")
        got = rig.sms[0]
        assert got.text == emoji and got.parts > 1 and got.sender == PHONE
        assert got.imsi == rig.module.sim.imsi
        yield wait_until(lambda: rig.module.sim.store.used == 0, what="module copy deleted")
        assert any(line.startswith("AT+CMGS=") for line in rig.sent)
        assert not any(line.startswith("AT+CMGF=1") for line in rig.sent)
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_ussd_plain_packed_ucs2_and_session(net):
    rig = yield up(net)
    try:
        m = rig.modem
        reply = yield m.ussd("*100#")
        assert reply == model.UssdReply(0, "Your balance is 10.00 USD.")
        packed = yield m.ussd("*124#")  # the network's reply is GSM 7-bit packed hex
        assert packed.text == "Balance 10.00 USD"
        ucs2 = yield m.ussd("*123#")
        assert "余额" in ucs2.text and "😀" in ucs2.text
        menu = yield m.ussd("*111#")
        assert menu.session_open
        answer = yield m.ussd_reply("2")
        assert rig.module.sim.msisdn in answer.text and not answer.session_open
        yield m.ussd("*111#")
        yield m.ussd_cancel()
        assert rig.module.ussd_session is None
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_ussd_fails_cleanly_when_the_module_stays_transparent(net):
    """Firmware without ^USSDMODE keeps the transparent mode: our plain-text request
    is refused with a +CME ERROR rather than hanging (see the driver docstring)."""
    rig = yield booted(net, "huawei")
    try:
        rig.module.faults.apply("error", command="^USSDMODE", reply="ERROR")
        yield rig.modem.initialise()
        yield wait_until(lambda: rig.module.registered)
        assert rig.module.settings.ussdmode == 1
        with pytest.raises(at.CmeError):
            yield rig.modem.ussd("*100#")
        assert rig.modem._ussd_waiter is None
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_gains_and_unplug_during_call(net):
    net.add_remote_phone(PHONE, answer_after=0.05)
    rig = yield up(net)
    try:
        yield rig.modem.set_gains(mic=7, speaker=4)
        assert "AT+CMIC=7" in rig.sent and "AT+CLVL=4" in rig.sent
        assert rig.module.settings.simcom_gain["+CMIC"] == 7 and rig.module.settings.clvl == 4
        yield rig.modem.dial(PHONE)
        yield wait_until(lambda: any(c.state == "active" for c in rig.modem.calls))
        rig.module.unplug()
        yield wait_until(lambda: rig.of(model.PortLost), what="port lost")
        ended = rig.of(model.CallEnded)
        assert ended and ended[0].text == "module lost"
        yield sleep(0.05)
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_line_service_on_a_huawei_module(rigs):
    """The line service (state machine, JSON status, hot plug) with the Huawei driver."""
    net, svc, add = rigs
    line = add("huawei")
    svc.startService()
    yield wait_until(lambda: line.state == "registered" and line.operator is not None,
                     what="registered")
    st = line.status()
    assert st["model"] == "ME909s-120" and st["technology"] == "4G"
    assert st["imei"] == line.module.imei and st["iccid"] == line.module.sim.iccid
    assert st["own_number"] == line.module.sim.msisdn and st["volte"] is None
    net.set_signal(line.module, 7)
    yield wait_until(lambda: line.status()["signal"] == 7, what="^RSSI reaches the line")
    line.module.replug()
    yield wait_until(lambda: line.state != "registered", what="replug noticed")
    yield wait_until(lambda: line.state == "registered", what="back after replug")
    assert line.status()["model"] == "ME909s-120"
