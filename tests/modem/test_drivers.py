"""Driver dialects through recorded transcripts (written by us from the manuals)."""

import pytest

from goip_tw.modem import model
from goip_tw.modem.drivers import DRIVERS, NotSupported, select_driver
from goip_tw.modem.drivers.base import cause_from_text

from .scripted import make, run, settle


@pytest.mark.parametrize("cgmi, cgmm, name", [
    ("Quectel", "EC25", "quectel"), ("QUECTEL", "EG25-G", "quectel"),
    ("Quectel", "EC200T", "quectel"), ("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H", "simcom"),
    ("SIMCom Wireless Solution", "SIM7600E", "simcom"), ("Huawei", "ME909s-120", "huawei"),
    ("huawei", "MU709s-2", "huawei"), ("Telit", "LE910", "generic"),
])
def test_driver_selection(cgmi, cgmm, name):
    assert select_driver(cgmi, cgmm).name == name


def test_forced_driver_and_unknown():
    assert select_driver("Telit", "x", "quectel-uac").name == "quectel-uac"
    with pytest.raises(ValueError, match="unknown"):
        select_driver("x", "y", "nokia")
    assert set(DRIVERS) >= {"generic", "quectel", "simcom", "huawei"}


HUAWEI = {
    "AT^ICCID?": "^ICCID: 98940100112233445566\r\n\r\nOK",
    "AT+CEREG?": "+CEREG: 2,1,\"1A2B\",\"01C2D301\",7\r\n\r\nOK",
    "AT^SYSINFOEX": '^SYSINFOEX:2,3,0,1,,6,"LTE",101,"LTE"\r\n\r\nOK',
    "AT+CUSD=1,*": "OK",
}


def test_huawei_identity_technology_and_urcs():
    modem, t, clock = make(("Huawei Technologies Co., Ltd.", "ME909s-120"), HUAWEI)
    events = []
    modem.add_observer(events.append)
    run(modem.initialise(), clock)
    assert modem.driver.name == "huawei"
    assert "AT^CVOICE=0" in t.sent and "AT^DDSETEX=2" in t.sent
    sim = run(modem.read_sim_identity(), clock)
    assert sim == model.SimIdentity("98940100112233445566", "262019876543210", "+4915112345678")
    reg = run(modem.registration(), clock)
    assert reg.registered and reg.technology == "4G"
    t.urc("^RSSI:23")
    assert events[-1] == model.SignalChanged(model.Signal(23, -67))
    t.urc("^DDTMF:7")
    assert events[-1] == model.DtmfReceived("7")


def test_huawei_call_end_cause_from_cend():
    calls = iter(['+CLCC: 1,0,0,0,0,"+4930123",145\r\n\r\nOK', "OK"])
    modem, t, clock = make(("Huawei", "ME909s"), dict(HUAWEI, **{"AT+CLCC": lambda c: next(calls)}))
    events = []
    modem.add_observer(events.append)
    run(modem.initialise(), clock)
    t.urc("^CONN:1,0")
    settle(clock)
    assert [c.state for c in modem.calls] == ["active"]
    t.urc("^CEND:1,35,104,17")
    settle(clock)
    ended = [e for e in events if isinstance(e, model.CallEnded)]
    assert ended and ended[0].cause == 17
    assert "AT+CEER" not in t.sent
    modem.stop()


def test_huawei_ussd_packed_hex():
    modem, t, clock = make(("Huawei", "E3372"), HUAWEI)
    run(modem.initialise(), clock)
    # "Balance 5 EUR" packed as GSM 7-bit, as Huawei reports it (dcs 15)
    from goip_tw.modem import gsm7
    packed = gsm7.pack(gsm7.encode("Balance 5 EUR")).hex().upper()
    d = modem.ussd("*100#")
    settle(clock)
    t.urc(f'+CUSD: 0,"{packed}",15')
    reply = run(d, clock)
    assert reply == model.UssdReply(0, "Balance 5 EUR") and not reply.session_open


SIMCOM = {
    "AT+CICCID": "+ICCID: 89860318740212345678\r\n\r\nOK",
    "AT+CEREG?": "+CEREG: 0,1\r\n\r\nOK",
    "AT+CPSI?": "+CPSI: WCDMA,Online,460-01,0xA809,13429762,WCDMA IMT 2000,136,10713,0,6.5,76,32,27,500\r\n\r\nOK",
    "AT+HTTPINIT": "OK",
    "AT+HTTPACTION=0": "OK",
}


def test_simcom_technology_iccid_and_audio_routing():
    calls = iter(['+CLCC: 1,0,2,0,0,"+4930123",145\r\n\r\nOK',
                  '+CLCC: 1,0,0,0,0,"+4930123",145\r\n\r\nOK', "OK"])
    modem, t, clock = make(("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H"),
                           dict(SIMCOM, **{"AT+CLCC": lambda c: next(calls)}))
    run(modem.initialise(), clock)
    assert "AT+CLCC=1" in t.sent and "AT+DDET=1" in t.sent
    assert run(modem.read_sim_identity(), clock).iccid == "89860318740212345678"
    assert run(modem.registration(), clock).technology == "3G"
    run(modem.dial("+4930123"), clock)
    assert "AT+CPCMREG=1" not in t.sent  # only once the call is up
    t.urc("VOICE CALL: BEGIN")
    settle(clock)
    assert "AT+CPCMREG=1" in t.sent
    t.urc("VOICE CALL: END: 000012")
    settle(clock)
    assert t.sent.index("AT+CPCMREG=0") > t.sent.index("AT+CPCMREG=1")
    modem.stop()


def test_simcom_dtmf_and_http():
    modem, t, clock = make(("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H"), SIMCOM)
    events = []
    modem.add_observer(events.append)
    run(modem.initialise(), clock)
    t.urc("+RXDTMF: #")
    assert events[-1] == model.DtmfReceived("#")
    d = modem.http_test("http://example.org/x")
    settle(clock)
    t.urc("+HTTPACTION: 0,204,0")
    assert run(d, clock) == model.HttpResult(204, 0)
    assert 'AT+HTTPPARA="URL","http://example.org/x"' in t.sent and "AT+HTTPTERM" in t.sent


def test_simcom_http_module_error_timeout_and_open_session():
    """SIM7500/SIM7600 HTTP(S) manual: a 7xx <statuscode> is the module's own error
    (status 0 to the caller); no +HTTPACTION within the timeout is AtTimeout with
    HTTPTERM still sent and no timer left; HTTPINIT refused (a session left open)
    is not fatal."""
    from goip_tw.modem import at
    script = dict(SIMCOM, **{"AT+HTTPINIT": "ERROR"})
    modem, t, clock = make(("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H"), script)
    run(modem.initialise(), clock)
    d = modem.http_test("http://example.org/x", timeout=5)
    settle(clock)
    t.urc("+HTTPACTION: 0,713,0")
    assert run(d, clock) == model.HttpResult(0, None)
    t.sent.clear()
    d = modem.http_test("http://example.org/slow", timeout=5)
    settle(clock)
    clock.advance(5)
    with pytest.raises(at.AtTimeout):
        run(d, clock)
    assert "AT+HTTPTERM" in t.sent
    assert not any(modem._urc_waiters.values())
    assert clock.getDelayedCalls() == []  # the URC timer went with the waiter
    modem.stop()

QUECTEL = {
    "AT+QCCID": "+QCCID: 89860117851014783481\r\n\r\nOK",
    "AT+CEREG?": "+CEREG: 2,5,\"1A2B\",\"01C2D301\",7\r\n\r\nOK",
    "AT+QNWINFO": '+QNWINFO: "TDD LTE","46000","LTE BAND 38",37900\r\n\r\nOK',
    'AT+QCFG="ims"': '+QCFG: "ims",1,0\r\n\r\nOK',
    "AT+QHTTPURL=*": "CONNECT",
    "AT+QHTTPGET=80": "OK",
}


def test_quectel_dialect():
    modem, t, clock = make(("Quectel", "EG25"), QUECTEL)
    events = []
    modem.add_observer(events.append)
    run(modem.initialise(), clock)
    assert "AT+QPCMV=1,0" in t.sent and 'AT+QINDCFG="all",1' in t.sent
    assert run(modem.read_sim_identity(), clock).iccid == "89860117851014783481"
    reg = run(modem.registration(), clock)
    assert reg.state == "roaming" and reg.technology == "4G"
    assert run(modem.volte(), clock) is False
    t.urc("+QTONEDET: 42")
    assert events[-1] == model.DtmfReceived("*")
    d = modem.http_test("http://example.org/")
    settle(clock)
    t.urc("+QHTTPGET: 0,301,0")
    assert run(d, clock) == model.HttpResult(301, 0)
    assert "http://example.org/" in t.sent  # written after CONNECT, not in a command


def test_generic_technology_from_cops_and_ceer_cause():
    calls = iter(['+CLCC: 1,1,4,0,0,"+4930999",145\r\n\r\nOK', "OK"])
    script = {"AT+CEREG?": "ERROR", "AT+CREG?": "+CREG: 0,1\r\n\r\nOK",
              "AT+COPS?": '+COPS: 0,2,"26201",2\r\n\r\nOK',
              "AT+CEER": "+CEER: Call rejected\r\n\r\nOK",
              "AT+CLCC": lambda c: next(calls)}
    modem, t, clock = make(("Telit", "LE910"), script)
    events = []
    modem.add_observer(events.append)
    run(modem.initialise(), clock)
    assert run(modem.registration(), clock).technology == "3G"
    with pytest.raises(NotSupported):
        run(modem.set_volte(True), clock)
    t.urc("RING")
    t.urc('+CLIP: "+4930999",145,"",0,"",0')
    settle(clock)
    assert isinstance(events[0], model.IncomingCall) and events[0].call.number == "+4930999"
    t.urc("NO CARRIER")
    settle(clock)
    ended = [e for e in events if isinstance(e, model.CallEnded)][0]
    assert ended.cause == 21 and ended.text == "Call rejected"
    modem.stop()


@pytest.mark.parametrize("text, cause", [
    ("Normal call clearing", 16), ("User busy", 17), ("No answer", 19),
    ("+CEER: 34", 34), ("Unassigned (unallocated) number", 1), ("bogus", None)])
def test_cause_from_text(text, cause):
    assert cause_from_text(text) == cause


def test_bad_input_never_reaches_the_port():
    from goip_tw.modem import at
    modem, t, clock = make(("Quectel", "EC25"), QUECTEL)
    run(modem.initialise(), clock)
    before = list(t.sent)
    for bad in (lambda: modem.dial("123;+CFUN=0"), lambda: modem.send_dtmf("1\r"),
                lambda: modem.unlock('12"34'), lambda: modem.ussd("*1#\r\nAT")):
        with pytest.raises(at.BadArgument):
            d = bad()
            run(d, clock)
    assert t.sent == before


def test_status_report_in_sr_storage_is_read_and_deleted_there():
    from datetime import datetime, timezone
    from goip_tw.modem import pdu
    ts = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    hexpdu, n = pdu.encode_status_report(9, "+4930123", ts, ts, 0)
    modem, t, clock = make(("Quectel", "EC25"), dict(QUECTEL, **{
        "AT+CMGR=2": f"+CMGR: 0,,{n}\r\n{hexpdu}\r\n\r\nOK"}))
    reports = []
    modem.report_handler = lambda r: reports.append(r)
    run(modem.initialise(), clock)
    t.sent.clear()
    t.urc('+CDSI: "SR",2')
    settle(clock)
    assert [r.message_ref for r in reports] == [9]
    assert t.sent == ['AT+CPMS="SR"', "AT+CMGR=2", 'AT+CPMS="SM","SM","SM"',
                      'AT+CPMS="SR"', "AT+CMGD=2", 'AT+CPMS="SM","SM","SM"']
