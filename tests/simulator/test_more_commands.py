"""Remaining command families, dialect details and a fuzz test: whatever the
bytes, the module keeps answering."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goip_tw.modem import pdu

from .conftest import ready as conftest_ready, Sim


def ready(sim, modules=2, **kw):
    return conftest_ready(sim, modules, **kw)


def test_simcom_boot_sequence_and_pin_counters(sim):
    s = sim(modules=1, dialects=["simcom"])
    c = s.client()
    s.settle(2)
    boot = c.take()
    assert boot.index("RDY") < boot.index("+CPIN: READY") < boot.index("SMS DONE")
    assert "PB DONE" in boot and "+QIND" not in boot
    c.cmd("ATE0")
    assert c.lines("AT+SPIC") == ["+SPIC: 3,3,10,10", "OK"]
    assert c.lines("AT+CPSI?")[0].startswith("+CPSI: LTE,Online,001-01,")
    assert c.lines("AT+QNWINFO") == ["ERROR"]


def test_repeat_last_command_and_s_registers(sim):
    s, (c, _) = ready(sim)
    assert c.lines("AT+CSQ") == ["+CSQ: 24,99", "OK"]
    assert c.lines("A/") == ["+CSQ: 24,99", "OK"]
    assert c.lines("ATS3?") == ["013", "OK"]
    assert c.lines("ATS0=0") == ["OK"]
    assert c.lines("AT&F") == ["OK"]
    assert c.lines("AT") == ["AT\r", "OK"]  # factory defaults turn echo back on


def test_csca_csmp_and_text_mode_status_report(sim):
    s, (a, b) = ready(sim)
    assert a.lines('AT+CSCA="+4912345"') == ["OK"]
    assert a.lines("AT+CSCA?") == ['+CSCA: "+4912345",145', "OK"]
    assert a.lines('AT+CSCA="abc"') == ["+CMS ERROR: 304"]
    a.cmd("AT+CMGF=1")
    a.cmd("AT+CSMP=49,167,0,0")  # TP-SRR set (0x20)
    assert a.lines("AT+CSMP?") == ["+CSMP: 49,167,0,0", "OK"]
    a.cmd("AT+CNMI=2,1,0,1,0")
    a.cmd(f'AT+CMGS="{s.network.modules[1].sim.msisdn}"')
    a.write(b"with report\x1a")
    s.settle(1.5)
    out = a.take()
    assert "+CMGS: 1" in out
    assert f'+CDS: 6,1,"{s.network.modules[1].sim.msisdn}",,"26/01/01,' in out


def test_status_report_stored_with_cdsi(sim):
    s, (a, b) = ready(sim)
    a.cmd("AT+CNMI=2,1,0,2,0")
    hex_pdu, length = pdu.encode_submit(s.network.modules[1].sim.msisdn, "x",
                                        status_report=True)[0]
    a.cmd(f"AT+CMGS={length}")
    a.write(hex_pdu.encode() + b"\x1a")
    s.settle(1.5)
    assert '+CDSI: "SM",1' in a.take()
    report = pdu.decode(a.lines("AT+CMGR=1")[1])
    assert isinstance(report, pdu.StatusReport) and report.status == 0


def test_cmgw_writes_to_the_store(sim):
    s, (a, _) = ready(sim)
    hex_pdu, length = pdu.encode_submit("+15556000", "draft")[0]
    assert a.cmd(f"AT+CMGW={length}").endswith("> ")
    a.write(hex_pdu.encode() + b"\x1a")
    s.settle(0.2)
    assert "+CMGW: 1" in a.take()
    assert a.lines("AT+CMGL=2")[0] == f"+CMGL: 1,2,,{length}"


def test_ucs2_character_set_in_text_mode(sim):
    s, (a, b) = ready(sim)
    b.cmd("AT+CMGF=1")
    b.cmd('AT+CSCS="UCS2"')
    s.network.sms.send("+15556001", s.network.modules[1].sim.msisdn, "Привет 😀")
    s.settle(0.5)
    lines = b.lines("AT+CMGR=1")
    assert bytes.fromhex(lines[1]).decode("utf-16-be") == "Привет 😀"
    number = s.network.modules[0].sim.msisdn.encode("utf-16-be").hex().upper()
    assert b.cmd(f'AT+CMGS="{number}"').endswith("> ")
    b.write("Ответ".encode("utf-16-be").hex().upper().encode() + b"\x1a")
    s.settle(0.5)
    assert "+CMGS:" in b.take()
    assert s.network.sms.log[-1]["text"] == "Ответ"


def test_network_api_empty_slots_and_pins(sim):
    s = Sim(modules=0)
    try:
        m = s.network.add_module("simcom", 3, empty_slots=(1,), pin="4321")
        assert m.dialect == "simcom" and m.slots[1] is None and m.slots[2].pin == "4321"
        assert m.plugged  # added to a running network: started at once
        import pytest

        with pytest.raises(ValueError):
            s.network.add_module("nokia")
        with pytest.raises(ValueError):
            s.network.add_module("quectel", 5)
    finally:
        s.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=6))
def test_fuzzed_input_never_kills_the_module(chunks):
    s = Sim(modules=1)
    try:
        c = s.client()
        s.settle(1.5)
        module = s.network.modules[0]
        for chunk in chunks:
            module.data_received(chunk)
            module.data_received(b"\r")
            s.settle(0.2)
        module.data_received(b"\x1b")  # leave any > prompt
        s.settle(0.2)
        module.faults.clear()
        module.settings.echo = False
        module.settings.verbose = True
        c.take()
        assert "OK" in c.cmd("AT") or not module.plugged
    finally:
        s.close()


def test_prepaid_balance_is_charged_for_sms_and_calls(sim):
    s, (a, b) = ready(sim)
    card = s.network.modules[0].sim
    s.network.sms.send(card.msisdn, s.network.modules[1].sim.msisdn, "y" * 200)  # 2 parts
    assert card.balance == 9.9
    s.network.add_remote_phone("+15556002", answer_after=0.1, hangup_after=61)
    a.cmd("ATD+15556002;")
    s.settle(63)
    assert card.balance == 9.7  # two started minutes
    a.cmd('AT+CUSD=1,"*100#",15')
    s.settle(1.5)
    assert '"Your balance is 9.70 USD."' in a.take()


def test_simcom_http_gains_and_cssn(sim):
    s, (_, b) = ready(sim, dialects=["quectel", "simcom"])
    url = "http://example.test/"
    s.network.http_responses[url] = (404, "nope")
    assert b.lines("AT+HTTPACTION=0") == ["ERROR"]
    assert b.lines("AT+HTTPINIT") == ["OK"]
    assert b.lines("AT+HTTPINIT") == ["ERROR"]
    assert b.lines(f'AT+HTTPPARA="URL","{url}"') == ["OK"]
    assert b.lines("AT+HTTPACTION=0") == ["OK"]
    s.settle(1)
    assert "+HTTPACTION: 0,404,4" in b.take()
    # SIM7500/SIM7600/SIM7800 HTTP(S) AT Command Manual: the read form gives the
    # length; <offset>,<size> answers OK, then the data between +HTTPREAD lines
    assert b.lines("AT+HTTPREAD?") == ["+HTTPREAD: LEN,4", "OK"]
    assert b.lines("AT+HTTPREAD=1,500") == ["OK"]
    s.settle(0.1)
    assert b.take() == "\r\n+HTTPREAD: DATA,3\r\nope\r\n+HTTPREAD: 0\r\n"
    assert b.lines("AT+HTTPREAD=5,1") == ["+CME ERROR: 50"]  # past the end
    assert b.lines("AT+HTTPTERM") == ["OK"]
    assert b.lines("AT+CMICGAIN=5") == ["OK"]
    assert b.lines("AT+CMICGAIN?") == ["+CMICGAIN: 5", "OK"]
    assert b.lines("AT+COUTGAIN=9") == ["+CME ERROR: 50"]
    assert b.lines("AT+CSSN=1,1") == ["OK"]
    assert b.lines("AT+CSSN?") == ["+CSSN: 1,1", "OK"]


def test_crsm_reads_the_last_message_reference(sim):
    s, (a, b) = ready(sim)
    assert a.lines("AT+CRSM=176,28483,0,0,2") == ['+CRSM: 144,0,"00FF"', "OK"]
    hex_pdu, length = pdu.encode_submit(s.network.modules[1].sim.msisdn, "x")[0]
    for _ in range(2):
        a.cmd(f"AT+CMGS={length}")
        a.write(hex_pdu.encode() + b"\x1a")
        s.settle(0.2)
        a.take()
    assert a.lines("AT+CRSM=176,28483,0,0,2") == ['+CRSM: 144,0,"02FF"', "OK"]
    assert a.lines("AT+CRSM=176,12258,0,0,10") == ['+CRSM: 106,130,""', "OK"]
