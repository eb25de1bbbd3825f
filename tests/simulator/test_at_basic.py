"""General, SIM and network AT commands through a real pty (F-106)."""

import pytest

from goip_tw.simulator.sim import make_sim


def booted(sim, **kw):
    s = sim(**kw)
    clients = [s.client(i) for i in range(len(s.network.modules))]
    s.settle(2)
    for c in clients:
        c.take()
        c.cmd("ATE0")
    return s, clients


def test_boot_urcs_and_identification_quectel(sim):
    s = sim(modules=1)
    c = s.client()
    s.settle(2)
    boot = c.take()
    assert boot.index("RDY") < boot.index("+CPIN: READY") < boot.index("+QIND: SMS DONE")
    assert "+QIND: PB DONE" in boot
    assert c.lines("ATI") == ["ATI\r", "Quectel", "EC25", "Revision: EC25EFAR06A06M4G", "OK"]
    c.cmd("ATE0")
    assert c.lines("AT+CGMI") == ["Quectel", "OK"]
    assert c.lines("AT+CGMM") == ["EC25", "OK"]
    assert c.lines("AT+CGMR") == ["EC25EFAR06A06M4G", "OK"]
    imei = s.network.modules[0].imei
    assert c.lines("AT+CGSN") == [imei, "OK"]
    assert c.lines("AT+GSN") == [imei, "OK"]


def test_identification_simcom(sim):
    s, (c,) = booted(sim, modules=1, dialects=["simcom"])
    lines = c.lines("ATI")
    assert "Manufacturer: SIMCOM INCORPORATED" in lines
    assert "Model: SIMCOM_SIM7600G-H" in lines
    assert c.lines("AT+CGMR")[0].startswith("+CGMR: ")
    assert c.lines("AT+CICCID")[0].startswith("+ICCID: 89")
    assert c.lines("AT+QCCID") == ["ERROR"]  # Quectel-only command


def test_echo_verbose_and_cmee(sim):
    s, (c,) = booted(sim, modules=1)
    c.cmd("ATE1")
    assert c.cmd("AT").startswith("AT\r")
    c.cmd("ATE0")
    assert c.cmd("AT") == "\r\nOK\r\n"
    assert c.cmd("ATV0") == "0\r"
    assert c.cmd("AT+NOPE") == "4\r"
    assert c.cmd("ATV1") == "\r\nOK\r\n"
    assert c.lines("AT+CPIN=1234") == ["ERROR"]
    c.cmd("AT+CMEE=1")
    assert c.lines("AT+CPIN=1234") == ["+CME ERROR: 3"]
    c.cmd("AT+CMEE=2")
    assert c.lines("AT+CPIN=1234") == ["+CME ERROR: operation not allowed"]
    assert c.lines("AT+CMEE?") == ["+CMEE: 2", "OK"]


def test_unknown_and_combined_commands(sim):
    s, (c,) = booted(sim, modules=1)
    assert c.lines("AT+MODE=2") == ["ERROR"]
    assert c.lines("AT$TSSPCSW=?") == ["ERROR"]
    assert c.lines("AT+CMGF=0;+CSCA?") == ['+CSCA: "+12125550000",145', "OK"]
    assert c.lines("AT+CSCS?;+CSCS=?") == ['+CSCS: "GSM"', '+CSCS: ("GSM","IRA","UCS2")', "OK"]
    assert c.lines("ATE0V1") == ["OK"]
    assert c.cmd("garbage without prefix") == ""
    assert c.lines("\x1bAT") == ["OK"]


def test_pin_counts_down_to_puk(sim):
    s = sim(modules=1, slots=1)
    module = s.network.modules[0]
    module.slots[0] = make_sim(1, 0, pin="1111")
    c = s.client()
    module.sim_init()
    s.settle(1)
    assert "+CPIN: SIM PIN" in c.take()
    c.cmd("ATE0")
    c.cmd("AT+CMEE=1")
    assert c.lines("AT+CPIN?") == ["+CPIN: SIM PIN", "OK"]
    assert c.lines("AT+CIMI") == ["+CME ERROR: 11"]
    assert c.lines("AT+QPINC?")[0] == '+QPINC: "SC",3,10'
    assert c.lines('AT+CPIN="0000"') == ["+CME ERROR: 16"]
    assert c.lines('AT+CPIN="0000"') == ["+CME ERROR: 16"]
    assert c.lines('AT+CPIN="0000"') == ["+CME ERROR: 12"]
    assert c.lines("AT+CPIN?") == ["+CPIN: SIM PUK", "OK"]
    assert c.lines('AT+CPIN="99999999","2222"') == ["+CME ERROR: 16"]
    out = c.cmd('AT+CPIN="12345678","2222"')
    assert "OK" in out and "+CPIN: READY" in out
    s.settle(3)
    assert module.registered
    assert module.sim.pin == "2222"


def test_sim_identity(sim):
    s, (c,) = booted(sim, modules=1)
    card = s.network.modules[0].sim
    assert c.lines("AT+CIMI") == [card.imsi, "OK"]
    assert c.lines("AT+CCID") == [f"+CCID: {card.iccid}", "OK"]
    assert c.lines("AT+QCCID") == [f"+QCCID: {card.iccid}", "OK"]
    assert c.lines("AT+CNUM") == [f'+CNUM: "","{card.msisdn}",145', "OK"]


def test_registration_urcs_and_queries(sim):
    s, (c,) = booted(sim, modules=1)
    module = s.network.modules[0]
    c.cmd("AT+CREG=2")
    c.cmd("AT+CGREG=1")
    c.cmd("AT+CEREG=2")
    assert c.lines("AT+CREG?")[0] == f'+CREG: 2,1,"1A2B","{module.ci:X}",7'
    assert c.lines("AT+CGREG?")[0] == "+CGREG: 1,1"
    s.network.set_coverage(module, False)
    urcs = c.take()
    assert "+CREG: 2" in urcs and "+CGREG: 2" in urcs and "+CEREG: 2" in urcs
    assert c.lines("AT+CSQ") == ["+CSQ: 99,99", "OK"]
    assert c.lines("AT+COPS?") == ["+COPS: 0", "OK"]
    s.network.set_coverage(module, True)
    s.settle(4)
    urcs = c.take()
    assert f'+CREG: 1,"1A2B","{module.ci:X}",7' in urcs
    assert c.lines("AT+CGATT?") == ["+CGATT: 1", "OK"]


def test_cops_query_list_manual_and_automatic(sim):
    s, (c,) = booted(sim, modules=1)
    assert c.lines("AT+COPS?") == ['+COPS: 0,0,"Simulated Mobile",7', "OK"]
    listing = c.lines("AT+COPS=?")[0]
    assert '(2,"Simulated Mobile","SimMobile","00101",7)' in listing
    assert '(1,"Test Telecom","TestTel","00102",7)' in listing
    c.cmd("AT+COPS=3,2")
    assert c.lines("AT+COPS?") == ['+COPS: 0,2,"00101",7', "OK"]
    c.cmd("AT+CMEE=1")
    assert c.lines('AT+COPS=1,2,"99999"') == ["+CME ERROR: 30"]
    assert c.lines('AT+COPS=1,2,"00102"') == ["OK"]
    s.settle(2)
    assert c.lines("AT+COPS?") == ['+COPS: 1,2,"00102",7', "OK"]
    c.cmd("AT+CREG=1")
    assert c.lines("AT+CREG?")[0] == "+CREG: 1,5"  # roaming on a foreign PLMN
    c.cmd("AT+COPS=0")
    s.settle(2)
    assert c.lines("AT+CREG?")[0] == "+CREG: 1,1"


def test_quectel_network_info_and_ims(sim):
    s, (c,) = booted(sim, modules=1)
    assert c.lines("AT+QNWINFO") == ['+QNWINFO: "FDD LTE","00101","LTE BAND 3",1300', "OK"]
    assert c.lines("AT+QSPN") == ['+QSPN: "Simulated Mobile","SimMobile","",0,"00101"', "OK"]
    assert c.lines('AT+QCFG="ims"') == ['+QCFG: "ims",1,1', "OK"]
    c.cmd('AT+QCFG="ims",2')
    assert c.lines('AT+QCFG="ims"') == ['+QCFG: "ims",2,1', "OK"]
    assert c.lines('AT+QCFG="nwscanmode",0') == ["OK"]


def test_qindcfg_signal_urc(sim):
    s, (c,) = booted(sim, modules=1)
    module = s.network.modules[0]
    assert c.lines('AT+QINDCFG="csq"') == ['+QINDCFG: "csq",0', "OK"]
    c.cmd('AT+QINDCFG="csq",1')
    s.network.set_signal(module, 12)
    assert '+QIND: "csq",12,99' in c.take()
    assert c.lines("AT+CSQ") == ["+CSQ: 12,99", "OK"]
    with pytest.raises(ValueError):
        s.network.set_signal(module, 40)


def test_audio_gain_commands(sim):
    s, (c,) = booted(sim, modules=1)
    c.cmd("AT+CLVL=5")
    assert c.lines("AT+CLVL?") == ["+CLVL: 5", "OK"]
    c.cmd("AT+QMIC=1000,2000")
    assert c.lines("AT+QMIC?") == ["+QMIC: 1000,2000", "OK"]
    c.cmd("AT+QRXGAIN=30000")
    assert c.lines("AT+QRXGAIN?") == ["+QRXGAIN: 30000", "OK"]
    c.cmd("AT+CMEE=1")
    assert c.lines("AT+QRXGAIN=70000") == ["+CME ERROR: 50"]


def test_cfun_modes_and_reset_reopens_ports(sim):
    s, (c,) = booted(sim, modules=1)
    module = s.network.modules[0]
    c.cmd("AT+CREG=1")
    assert c.lines("AT+CFUN=4") == ["OK", "+CREG: 0"]
    assert not module.registered
    assert c.lines("AT+CFUN?") == ["+CFUN: 4", "OK"]
    c.cmd("AT+CFUN=1")
    s.settle(3)
    assert module.registered
    old_path, imei = module.at_path, module.imei
    assert c.lines("AT+CFUN=1,1") == ["OK"]
    s.settle(0.5)
    assert not module.plugged
    s.settle(2)
    assert module.plugged and module.at_path and module.imei == imei
    assert module.at_path != old_path  # re-enumerated, like USB after a reset
    c2 = s.client()
    s.settle(2)
    assert module.registered
    c2.cmd("ATE0")
    assert c2.lines("AT+CGSN") == [imei, "OK"]


def test_qdsim_switches_slot_and_reinitialises(sim):
    s, (c,) = booted(sim, modules=1, slots=2)
    module = s.network.modules[0]
    first = module.sim.imsi
    assert c.lines("AT+QDSIM?") == ["+QDSIM: 0", "OK"]
    assert c.lines("AT+QDSIM=1") == ["OK"]
    s.settle(1)
    assert "+CPIN: READY" in c.take()
    assert not module.registered or module.sim.imsi != first
    s.settle(3)
    assert module.registered
    assert c.lines("AT+CIMI")[0] == module.slots[1].imsi != first


def test_simulator_slot_switch_and_empty_slot(sim):
    s = sim(modules=1, slots=4)
    module = s.network.modules[0]
    module.slots[2] = None
    c = s.client()
    s.settle(3)
    c.take()
    c.cmd("ATE0")
    module.switch_slot(2)
    s.settle(1)
    assert "+CPIN: NOT INSERTED" in c.take()
    c.cmd("AT+CMEE=1")
    assert c.lines("AT+CPIN?") == ["+CME ERROR: 10"]
    module.switch_slot(3)
    s.settle(4)
    assert module.registered and module.sim is module.slots[3]
    with pytest.raises(ValueError):
        module.switch_slot(7)


def test_http_test_commands(sim):
    s, (c,) = booted(sim, modules=1)
    url = "http://example.test/ping"
    s.network.http_responses[url] = (204, "")
    assert c.cmd(f"AT+QHTTPURL={len(url)},80").endswith("CONNECT\r\n")
    c.write(url.encode())
    s.settle(0.2)
    assert c.take() == "\r\nOK\r\n"
    assert c.lines("AT+QHTTPURL?") == [f'+QHTTPURL: "{url}"', "OK"]
    assert c.lines("AT+QHTTPGET=80") == ["OK"]
    s.settle(1)
    assert "+QHTTPGET: 0,204,0" in c.take()
    s.network.http_responses.clear()
    assert c.lines("AT+QHTTPGET=80") == ["OK"]
    s.settle(1)
    assert "+QHTTPGET: 0,200," in c.take()
    out = c.cmd("AT+QHTTPREAD=80")
    assert "CONNECT" in out and "goip-tw simulator" in out and "OK" in out


def test_cell_change_urc(sim):
    s, (c,) = booted(sim, modules=1)
    module = s.network.modules[0]
    c.cmd("AT+CREG=2")
    c.cmd("AT+CEREG=1")
    s.network.set_cell(module, 0x00AB, 0x12345)
    urcs = c.take()
    assert '+CREG: 1,"00AB","12345",7' in urcs and "+CEREG" not in urcs
    with pytest.raises(ValueError):
        s.network.set_cell(module, 0x10000, 1)
