"""Fault injection and USSD through a real pty; the simulator never dies."""

import os

import pytest

from goip_tw.modem import gsm7

from .conftest import ready as conftest_ready


def ready(sim, modules=1, **kw):
    return conftest_ready(sim, modules, **kw)


def test_silent_module_ignores_commands_until_cleared(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    module.apply_fault("silent")
    assert c.cmd("AT") == ""
    module.apply_fault("clear")
    assert c.lines("AT") == ["OK"]


def test_slow_answers_arrive_late_and_in_order(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    module.apply_fault("slow", delay=3)
    c.write(b"AT+CSQ\rAT+CGMI\r")
    s.settle(1)
    assert c.take() == ""
    s.settle(2.5)
    assert "+CSQ: 24,99" in c.take()
    s.settle(3.5)
    assert "Quectel" in c.take()
    with pytest.raises(ValueError):
        module.apply_fault("slow", delay=-1)


def test_garbage_before_a_response(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    module.apply_fault("garbage", count=1, length=32)
    c.write(b"AT\r")
    raw = b""
    for _ in range(5):
        raw += c.read()
    assert raw.endswith(b"\r\nOK\r\n") and len(raw) >= 32 + 6
    assert c.lines("AT") == ["OK"]
    module.apply_fault("garbage", now=True, length=8)
    assert len(c.read()) == 8


def test_urc_in_the_middle_of_a_response(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    module.apply_fault("urc_mid", text="+CMTI: \"SM\",3")
    assert c.lines("AT+CIMI") == [module.sim.imsi, '+CMTI: "SM",3', "OK"]
    assert c.lines("AT+CIMI") == [module.sim.imsi, "OK"]


def test_injected_errors(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    module.apply_fault("error", command="+CMGS", reply="+CMS ERROR: 500", count=2)
    module.apply_fault("error", command="+CSQ", reply="+CME ERROR: 100")
    assert c.lines("AT+CMGS=20") == ["+CMS ERROR: 500"]
    assert c.lines("AT+CSQ") == ["+CME ERROR: 100"]
    assert c.lines("AT+CMGS=20") == ["+CMS ERROR: 500"]
    assert c.lines("AT+CSQ") == ["+CSQ: 24,99", "OK"]
    with pytest.raises(ValueError):
        module.apply_fault("explode")


def test_store_full_fault(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    module.apply_fault("store_full")
    assert c.lines("AT+CPMS?")[0] == '+CPMS: "SM",30,30,"SM",30,30,"SM",30,30'
    s.network.sms.send("+15552000", module.sim.msisdn, "no room")
    s.settle(0.5)
    assert "+CMTI" not in c.take()
    module.apply_fault("store_clear")
    s.settle(0.5)
    assert '+CMTI: "SM",1' in c.take()


def test_unplug_and_replug_new_paths_same_imei(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    old_at, old_audio, imei = module.at_path, module.audio_path, module.imei
    module.apply_fault("unplug")
    assert not module.plugged and module.at_path is None
    assert os.read(c.fd, 10) == b""  # hang-up: the device vanished under the client
    with pytest.raises(OSError):
        os.write(c.fd, b"AT\r")
    module.apply_fault("replug")
    assert module.plugged and module.imei == imei
    assert module.at_path != old_at and module.audio_path != old_audio
    c2 = s.client()
    s.settle(3)
    assert "RDY" in c2.take()
    c2.cmd("ATE0")
    assert c2.lines("AT+CGSN") == [imei, "OK"]
    assert module.registered


def test_unplug_during_a_call_ends_it(sim):
    s, (c,) = ready(sim)
    phone = s.network.add_remote_phone("+15552001", answer_after=0.2)
    c.cmd("ATD+15552001;")
    s.settle(1)
    call = s.network.calls[-1]
    assert call.state == "active"
    s.network.modules[0].unplug()
    assert call.state == "ended" and phone.call is None


def test_link_dir_keeps_stable_names(sim, tmp_path):
    s = sim(modules=1, link_dir=str(tmp_path))
    module = s.network.modules[0]
    link = tmp_path / "module1-at"
    assert os.path.realpath(link) == module.at_path
    module.replug()
    assert os.path.realpath(link) == module.at_path
    assert os.path.realpath(tmp_path / "module1-audio") == module.audio_path


def test_unplug_removes_stable_names(sim, tmp_path):
    """A name left pointing at a closed pty would open whatever pty the kernel
    numbers alike next (another module's, another process's)."""
    s = sim(modules=1, link_dir=str(tmp_path))
    module = s.network.modules[0]
    module.unplug()
    assert not os.path.lexists(tmp_path / "module1-at")
    assert not os.path.lexists(tmp_path / "module1-audio")
    module.start()
    assert os.path.realpath(tmp_path / "module1-at") == module.at_path
    assert os.path.realpath(tmp_path / "module1-audio") == module.audio_path


def test_operator_change_and_signal_events(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    c.cmd("AT+CREG=1")
    s.network.change_operator(module, "00102")
    s.settle(2)
    out = c.take()
    assert "+CREG: 2" in out and "+CREG: 5" in out
    assert c.lines("AT+COPS?")[0] == '+COPS: 0,0,"Test Telecom",7'
    with pytest.raises(ValueError):
        s.network.change_operator(module, "12345")
    kinds = [e["kind"] for e in s.network.events]
    assert "operator" in kinds and "registered" in kinds


def test_bad_bytes_never_kill_the_module(sim):
    s, (c,) = ready(sim)
    for junk in (b"\xff\xfe\x00\r", b"AT+CMGS=\r", b"AT+CPIN=\"\r", b'AT+COPS=1,2,"\r',
                 b"AT+CMGR=abc\r", b"AT+VTS=\r", b"AT" + b"A" * 5000 + b"\r", b"ATD;\r",
                 b"AT+CHLD=9\r", b"AT+QHTTPURL=0\r", b"AT+CUSD=1,\"\r", b"ATS99=1\r"):
        c.write(junk)
        s.settle(0.1)
        c.take()
    assert c.lines("AT") == ["OK"]


def test_ussd_menu_continue_and_cancel(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    assert c.lines('AT+CUSD=1,"*111#",15') == ["OK"]
    s.settle(1.5)
    assert '+CUSD: 1,"Main menu\n1. Balance\n2. My number\n3. Offers",15' in c.take()
    c.cmd('AT+CUSD=1,"3",15')
    s.settle(1.5)
    assert '+CUSD: 1,"Offers:' in c.take()
    c.cmd('AT+CUSD=1,"1",15')
    s.settle(1.5)
    assert '+CUSD: 0,"100 minutes activated.",15' in c.take()
    c.cmd('AT+CUSD=1,"*111#",15')
    s.settle(1.5)
    c.take()
    assert c.lines("AT+CUSD=2") == ["OK", "+CUSD: 2"]
    assert module.ussd_session is None
    c.cmd('AT+CUSD=1,"*101#",15')
    s.settle(1.5)
    assert f'+CUSD: 0,"Your number is {module.sim.msisdn}.",15' in c.take()


def test_ussd_encodings(sim):
    s, (c,) = ready(sim)
    c.cmd('AT+CUSD=1,"*123#",15')
    s.settle(1.5)
    out = c.take()
    hex_text = out.split('+CUSD: 0,"')[1].split('"')[0]
    assert out.rstrip().endswith(",72")
    assert bytes.fromhex(hex_text).decode("utf-16-be") == "余额 10.00 USD 😀"
    c.cmd('AT+CUSD=1,"*124#",15')
    s.settle(1.5)
    packed = c.take().split('+CUSD: 0,"')[1].split('"')[0]
    raw = bytes.fromhex(packed)
    text = gsm7.decode(gsm7.unpack(raw, len(raw) * 8 // 7))
    assert text.rstrip("@\r") == "Balance 10.00 USD"
    c.cmd('AT+CSCS="UCS2"')
    c.cmd('AT+CUSD=1,"%s",15' % "*100#".encode("utf-16-be").hex().upper())
    s.settle(1.5)
    hex_text = c.take().split('+CUSD: 0,"')[1].split('"')[0]
    assert bytes.fromhex(hex_text).decode("utf-16-be") == "Your balance is 10.00 USD."


def test_ussd_unknown_code_push_and_no_network(sim):
    s, (c,) = ready(sim)
    module = s.network.modules[0]
    c.cmd('AT+CUSD=1,"*999#",15')
    s.settle(1.5)
    assert '+CUSD: 0,"Unknown service code.",15' in c.take()
    s.network.ussd.push(module, "Network says hi", action_required=True)
    assert '+CUSD: 1,"Network says hi",15' in c.take()
    s.network.set_coverage(module, False)
    assert c.lines('AT+CUSD=1,"*100#",15') == ["+CME ERROR: 30"]
