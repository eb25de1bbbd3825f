"""The Huawei dialect through a real pty: identity, ^ commands, call-progress URCs,
^CEND causes, ^RSSI, DTMF, the PCM voice port and transparent USSD."""

import re
from types import SimpleNamespace

import attrs
import pytest
from twisted.internet.testing import MemoryReactorClock

from goip_tw.config.sections.simulator import SimulatorSection
from goip_tw.modem import gsm7
from goip_tw.simulator import __main__ as cli
from goip_tw.simulator.audio import dominant_frequency
from goip_tw.simulator.service import build_network

from .conftest import ready
from .test_voice import play

H = ["huawei", "huawei"]


def huawei(sim, modules=1):
    return ready(sim, modules, dialects=H[:modules])


def packed(text: str) -> str:
    return gsm7.pack(gsm7.encode(text)).hex().upper()


def unpacked(hex_text: str) -> str:
    raw = bytes.fromhex(hex_text)
    return gsm7.decode(gsm7.unpack(raw, len(raw) * 8 // 7)).rstrip("@\r")


def test_boot_urcs_and_identity(sim):
    s = sim(modules=1, dialects=["huawei"])
    c = s.client(0)
    s.settle(2)
    boot = c.take()
    assert "^SYSSTART" in boot and "RDY" not in boot
    assert boot.index("^SYSSTART") < boot.index("+CPIN: READY") < boot.index("^SIMST:1")
    assert boot.rstrip().endswith("^SRVST:2")
    c.cmd("ATE0")
    module = s.network.modules[0]
    assert c.lines("AT+CGMI") == ["huawei", "OK"]
    assert c.lines("AT+CGMM") == ["ME909s-120", "OK"]
    assert c.lines("AT+CGMR") == ["11.617.01.00.00", "OK"]
    assert c.lines("AT+CGSN") == [module.imei, "OK"]
    assert c.lines("ATI") == ["Manufacturer: huawei", "Model: ME909s-120",
                              "Revision: 11.617.01.00.00", f"IMEI: {module.imei}",
                              "+GCAP: +CGSM,+DS,+ES", "OK"]
    assert c.lines("AT^ICCID?") == [f"^ICCID: {module.sim.iccid}", "OK"]
    assert c.lines("AT+CIMI") == [module.sim.imsi, "OK"]


def test_vendor_commands_of_other_dialects_are_refused(sim):
    s, (c, q) = ready(sim, 2, dialects=["huawei", "quectel"])
    for command in ("AT+QPCMV=1,0", "AT+QCCID", "AT+CPCMREG=1", "AT+QNWINFO"):
        assert c.lines(command) == ["ERROR"], command
    for command in ("AT^CVOICE?", "AT^SYSINFOEX", "AT^DDSETEX=2"):
        assert q.lines(command) == ["ERROR"], command


def test_system_info_and_signal(sim):
    s, (c,) = huawei(sim)
    module = s.network.modules[0]
    assert c.lines("AT^SYSINFOEX") == ['^SYSINFOEX:2,3,0,1,,6,"LTE",101,"LTE"', "OK"]
    assert c.lines("AT^SYSINFO") == ["^SYSINFO:2,3,0,17,1,,", "OK"]
    assert c.lines("AT^HCSQ?")[0].startswith('^HCSQ:"LTE",')
    assert c.lines("AT+CSQ") == [f"+CSQ: {module.rssi},99", "OK"]
    s.network.set_signal(module, 12)
    assert "^RSSI:12" in c.take()
    assert c.lines("AT^CURC?") == ["^CURC: 1", "OK"]
    c.cmd("AT^CURC=0")
    s.network.set_signal(module, 20)
    assert "^RSSI" not in c.take()
    c.cmd("AT^CURC=1")
    s.network.set_coverage(module, False)
    out = c.take()
    assert "^SRVST:0" in out
    assert c.lines("AT^SYSINFOEX") == ['^SYSINFOEX:0,0,0,1,,0,"NO SERVICE",0,"NO SERVICE"',
                                       "OK"]
    assert c.lines("AT^HCSQ?") == ['^HCSQ:"NOSERVICE"', "OK"]


def test_cvoice_and_data_only_firmware(sim):
    s, (c, d) = huawei(sim, 2)
    assert c.lines("AT^CVOICE?") == ["^CVOICE:0,8000,16,20", "OK"]
    assert c.lines("AT^CVOICE=?") == ["^CVOICE:(0)", "OK"]
    assert c.lines("AT^CVOICE=0") == ["OK"]
    assert c.lines("AT^CVOICE=1") == ["+CME ERROR: 50"]
    assert c.lines("AT^DDSETEX=?") == ["^DDSETEX:(1,2)", "OK"]
    assert c.lines("AT^DDSETEX=7") == ["+CME ERROR: 50"]
    s.network.modules[1].voice_capable = False
    assert d.lines("AT^CVOICE?") == ["ERROR"]
    assert d.lines("AT^DDSETEX=2") == ["ERROR"]


def test_outgoing_call_progress_and_remote_release(sim):
    s, (c,) = huawei(sim)
    s.network.add_remote_phone("+15552001", answer_after=2, hangup_after=5)
    assert c.lines("ATD+15552001;") == ["OK", "^ORIG:1,0"]
    s.settle(1)
    assert c.take().strip() == "^CONF:1"
    assert c.lines("AT+CLCC") == ['+CLCC: 1,0,3,0,0,"+15552001",145', "OK"]
    s.settle(2)
    assert c.take().strip() == "^CONN:1,0"
    s.settle(5.5)
    out = c.take()
    assert "^CEND:1,5,104,16" in out
    assert "NO CARRIER" not in out  # Huawei ends voice calls with ^CEND only
    assert c.lines("AT+CLCC") == ["OK"]


@pytest.mark.parametrize("behaviour, cause", [
    ({"busy": True}, 17), ({"reject": True}, 21), ({"answer_after": None}, 19),
])
def test_failed_calls_end_with_network_cause(sim, behaviour, cause):
    s, (c,) = huawei(sim)
    s.network.add_remote_phone("+15552002", **behaviour)
    c.cmd("ATD+15552002;")
    s.settle(62)
    out = c.take()
    assert f"^CEND:1,0,104,{cause}" in out
    assert "BUSY" not in out and "NO ANSWER" not in out and "NO CARRIER" not in out


def test_incoming_answer_local_hangup_and_reject(sim):
    s, (c,) = huawei(sim)
    phone = s.network.add_remote_phone("+15552003")
    c.cmd("AT+CLIP=1")
    module = s.network.modules[0]
    phone.dial(module.sim.msisdn)
    s.settle(1)
    out = c.take()
    assert "RING" in out and '+CLIP: "+15552003",145' in out
    assert c.lines("ATA") == ["OK", "^CONN:1,0"]
    s.settle(3)
    c.take()
    assert c.lines("AT+CHUP") == ["OK", "^CEND:1,3,29,16"]
    assert s.network.calls[-1].cause[0] == 16
    phone.dial(module.sim.msisdn)
    s.settle(1)
    c.take()
    assert c.lines("ATH") == ["OK", "^CEND:1,0,102,17"]
    assert s.network.calls[-1].cause[0] == 17


def test_hold_and_retrieve_send_conn_once(sim):
    s, (c,) = huawei(sim)
    p1 = s.network.add_remote_phone("+15552004")
    p2 = s.network.add_remote_phone("+15552005")
    msisdn = s.network.modules[0].sim.msisdn
    c.cmd("AT+CCWA=1,1")
    p1.dial(msisdn)
    s.settle(1)
    c.take()
    assert c.lines("ATA") == ["OK", "^CONN:1,0"]
    p2.dial(msisdn)
    s.settle(1)
    assert '+CCWA: "+15552005"' in c.take()
    assert c.lines("AT+CHLD=2") == ["OK", "^CONN:2,0"]
    assert c.lines("AT+CHLD=2") == ["OK"]  # swap back: no second ^CONN
    assert c.lines("AT+CLCC") == ['+CLCC: 1,1,0,0,0,"+15552004",145',
                                  '+CLCC: 2,1,1,0,0,"+15552005",145', "OK"]
    p2.hangup()
    s.settle(0.1)
    assert "^CEND:2,0,104,16" in c.take()


def test_dtmf_both_ways(sim):
    s, (c,) = huawei(sim)
    phone = s.network.add_remote_phone("+15552006", answer_after=0.5)
    c.cmd("ATD+15552006;")
    s.settle(1)
    c.take()
    assert c.lines("AT^DTMF=1,5") == ["OK"]
    assert c.lines("AT+VTS=#") == ["OK"]
    assert c.lines("AT^DTMF=2,5") == ["+CME ERROR: 3"]  # no such active call
    assert c.lines("AT^DTMF=1,X") == ["+CME ERROR: 50"]
    assert "".join(phone.received_dtmf) == "5#"
    phone.send_dtmf("7*")
    s.settle(3)
    out = c.take()
    assert re.findall(r"\^DDTMF:(.)", out) == ["7", "*"]


def test_voice_port_needs_ddsetex_for_every_call(sim):
    s, (c,) = huawei(sim)
    s.network.add_remote_phone("+15552007", answer_after=0.2, audio="tone:1000")
    voice = s.client(0, "audio")
    c.cmd("ATD+15552007;")
    s.settle(0.5)
    assert play(s, voice, bytes(320), 10) == b""  # ^DDSETEX not given yet
    assert c.lines("AT^DDSETEX=2") == ["OK"]
    got = play(s, voice, bytes(320), 25)
    assert len(got) >= 20 * 320
    assert abs(dominant_frequency(got[-3200:]) - 1000) < 30
    c.cmd("ATH")
    assert c.lines("AT^DDSETEX?") == ["^DDSETEX:0", "OK"]  # routing ended with the call
    c.cmd("ATD+15552007;")
    s.settle(0.5)
    voice.read()
    assert play(s, voice, bytes(320), 10) == b""
    c.cmd("ATH")


def test_transparent_and_plain_ussd(sim):
    s, (c,) = huawei(sim)
    module = s.network.modules[0]
    assert c.lines("AT^USSDMODE?") == ["^USSDMODE: 1", "OK"]
    assert c.lines('AT+CUSD=1,"*100#",15') == ["+CME ERROR: 50"]  # not packed hex
    assert c.lines(f'AT+CUSD=1,"{packed("*111#")}",15') == ["OK"]
    s.settle(1.5)
    reply = c.take().split('+CUSD: 1,"')[1].split('"')[0]
    assert unpacked(reply).startswith("Main menu\n1. Balance")
    c.cmd(f'AT+CUSD=1,"{packed("2")}",15')
    s.settle(1.5)
    reply = c.take().split('+CUSD: 0,"')[1].split('"')[0]
    assert unpacked(reply) == f"Your number is {module.sim.msisdn}."
    c.cmd(f'AT+CUSD=1,"{packed("*123#")}",15')  # UCS2 stays UCS2 hex (DCS 72)
    s.settle(1.5)
    out = c.take()
    assert out.rstrip().endswith(",72") and "😀" in bytes.fromhex(
        out.split('+CUSD: 0,"')[1].split('"')[0]).decode("utf-16-be")
    assert c.lines("AT^USSDMODE=0") == ["OK"]
    c.cmd('AT+CUSD=1,"*100#",15')
    s.settle(1.5)
    assert '+CUSD: 0,"Your balance is 10.00 USD.",15' in c.take()
    assert c.lines("AT^USSDMODE=2") == ["+CME ERROR: 50"]


def test_seven_character_request_padded_with_cr(sim):
    s, (c,) = huawei(sim)
    septets = gsm7.encode("*12345#") + [13]  # TS 23.038 6.1.2.3.1 CR padding
    c.cmd(f'AT+CUSD=1,"{gsm7.pack(septets).hex().upper()}",15')
    s.settle(1.5)
    assert [e["request"] for e in s.network.events if e["kind"] == "ussd"] == ["*12345#"]
    assert '+CUSD: 0,"' in c.take()  # "unknown service code", packed


def test_command_line_and_config_offer_huawei():
    args = cli.parse_args(["--dialect", "huawei", "--modules", "2", "--control-port", "-1"])
    network = cli.build(MemoryReactorClock(), args)
    assert [m.dialect for m in network.modules] == ["huawei", "huawei"]
    assert all(m.identity.manufacturer == "huawei" for m in network.modules)
    assert "(huawei, IMEI" in cli.describe_lines(network)[0]
    with pytest.raises(SystemExit):
        cli.parse_args(["--dialect", "nokia"])
    field = attrs.fields(SimulatorSection).dialect
    assert "huawei" in field.metadata["goip"].choices
    cfg = SimpleNamespace(reg_delay=1.0, ringback=True, modules=1, dialect="huawei", slots=2,
                          sim_pin="", echo_number="+12125550190",
                          sms_echo_number="+12125550191")
    net = build_network(MemoryReactorClock(), cfg, None)
    assert net.modules[0].dialect == "huawei" and len(net.modules[0].slots) == 2
