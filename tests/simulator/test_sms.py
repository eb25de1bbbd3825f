"""SMS through the simulated network, TS 27.005 commands on a real pty."""

from goip_tw.modem import pdu

from .conftest import ready as conftest_ready


def ready(sim, modules=2, **kw):
    return conftest_ready(sim, modules, **kw)


def number(s, i):
    return s.network.modules[i].sim.msisdn


def send_pdu(s, c, to, text, **kw):
    parts = pdu.encode_submit(to, text, **kw)
    refs = []
    for hex_pdu, length in parts:
        assert c.cmd(f"AT+CMGS={length}").endswith("> ")
        c.write(hex_pdu.encode() + b"\x1a")
        s.settle(0.2)
        out = c.take()
        assert "OK" in out, out
        refs.append(int(out.split("+CMGS: ")[1].split("\r")[0]))
    return refs


def test_pdu_mode_between_sims_with_cmti(sim):
    s, (a, b) = ready(sim)
    b.cmd("AT+CNMI=2,1,0,0,0")
    refs = send_pdu(s, a, number(s, 1), "hello sim two")
    assert refs == [1]
    s.settle(1)
    assert '+CMTI: "SM",1' in b.take()
    lines = b.lines("AT+CMGR=1")
    assert lines[0] == f"+CMGR: 0,,{lines[0].split(',')[-1]}"
    msg = pdu.decode(lines[1])
    assert msg.sender == number(s, 0) and msg.text == "hello sim two"
    assert b.lines("AT+CMGR=1")[0].startswith("+CMGR: 1,,")  # now read
    sent = s.network.sms.log[-1]
    assert sent["from"] == number(s, 0) and sent["status"] == "delivered"


def test_text_mode_send_list_and_delete(sim):
    s, (a, b) = ready(sim)
    a.cmd("AT+CMGF=1")
    assert a.cmd(f'AT+CMGS="{number(s, 1)}"').endswith("> ")
    a.write(b"plain text\x1a")
    s.settle(1)
    assert "+CMGS: 1" in a.take()
    b.cmd("AT+CMGF=1")
    listing = b.lines('AT+CMGL="ALL"')
    assert listing[0].startswith(f'+CMGL: 1,"REC UNREAD","{number(s, 0)}",,"26/01/01,')
    assert listing[1] == "plain text"
    assert b.lines('AT+CMGL="REC UNREAD"') == ["OK"]
    assert b.lines("AT+CMGD=1") == ["OK"]
    assert b.lines("AT+CMGR=1") == ["+CMS ERROR: 321"]
    assert b.lines("AT+CMGD=1") == ["+CMS ERROR: 321"]


def test_escape_aborts_and_bad_pdu_is_rejected(sim):
    s, (a, b) = ready(sim)
    assert a.cmd("AT+CMGS=20").endswith("> ")
    a.write(b"0011\x1b")
    s.settle(0.2)
    assert a.take() == "\r\nOK\r\n"
    assert s.network.sms.log == []
    assert a.cmd("AT+CMGS=20").endswith("> ")
    a.write(b"ZZZZ\x1a")
    s.settle(0.2)
    assert "+CMS ERROR: 304" in a.take()
    hex_pdu, length = pdu.encode_submit(number(s, 1), "x")[0]
    a.cmd(f"AT+CMGS={length + 3}")
    a.write(hex_pdu.encode() + b"\x1a")
    s.settle(0.2)
    assert "+CMS ERROR: 304" in a.take()  # length does not match the PDU


def test_direct_routing_cmt_with_cnma(sim):
    s, (a, b) = ready(sim)
    b.cmd("AT+CSMS=1")
    b.cmd("AT+CNMI=2,2,0,0,0")
    send_pdu(s, a, number(s, 1), "direct one")
    s.settle(0.5)
    urc = b.take()
    assert "+CMT: ," in urc
    pdu_line = urc.split("+CMT: ,")[1].split("\r\n")[1]
    assert pdu.decode(pdu_line).text == "direct one"
    assert b.lines("AT+CNMA") == ["OK"]
    assert b.lines("AT+CNMA") == ["+CMS ERROR: 340"]
    assert s.network.modules[1].sim.store.used == 0
    # No acknowledgement: routing falls back to the store (TS 27.005 3.4.4).
    send_pdu(s, a, number(s, 1), "direct two")
    s.settle(16)
    assert s.network.modules[1].settings.cnmi[1] == 0
    assert s.network.modules[1].sim.store.used == 1


def test_text_mode_cmt(sim):
    s, (a, b) = ready(sim)
    b.cmd("AT+CMGF=1")
    b.cmd("AT+CNMI=2,2,0,0,0")
    s.network.sms.send("+15550001", number(s, 1), "to the TE")
    s.settle(0.5)
    urc = b.take()
    assert '+CMT: "+15550001",,"26/01/01,' in urc and "to the TE" in urc


def test_status_report_requested(sim):
    s, (a, b) = ready(sim)
    a.cmd("AT+CNMI=2,1,0,1,0")
    refs = send_pdu(s, a, number(s, 1), "report please", status_report=True)
    s.settle(1)
    urc = a.take()
    assert "+CDS: " in urc
    report = pdu.decode(urc.split("+CDS: ")[1].split("\r\n")[1])
    assert isinstance(report, pdu.StatusReport)
    assert report.message_ref == refs[0] and report.status == 0
    # Undeliverable: a permanent-error report.
    refs = send_pdu(s, a, "+19999999999", "nobody", status_report=True)
    s.settle(1)
    report = pdu.decode(a.take().split("+CDS: ")[1].split("\r\n")[1])
    assert report.message_ref == refs[0] and report.status == 0x41


def test_every_part_of_a_long_message_gets_its_status_report(sim):
    """TS 23.040: each SMS-SUBMIT that asked for a report gets one, parts included."""
    s, (a, b) = ready(sim)
    a.cmd("AT+CNMI=2,1,0,1,0")
    refs = send_pdu(s, a, number(s, 1), "long " * 70, status_report=True, concat_ref=5)
    assert len(refs) == 3
    s.settle(1.5)
    urcs = a.take().split("+CDS: ")[1:]
    reports = [pdu.decode(u.split("\r\n")[1]) for u in urcs]
    assert sorted(r.message_ref for r in reports) == sorted(refs)
    assert all(r.status == 0 for r in reports)


def test_status_report_waits_for_store_space_instead_of_being_dropped(sim):
    s, (a, b) = ready(sim)
    a.cmd("AT+CNMI=2,1,0,2,0")  # reports stored on the SIM, +CDSI
    s.network.modules[0].apply_fault("store_full")
    refs = send_pdu(s, a, number(s, 1), "report me later", status_report=True)
    s.settle(1)
    assert "+CDSI" not in a.take()
    assert s.network.sms.pending_reports
    assert a.lines("AT+CMGD=1") == ["OK"]  # space again: the network retries
    s.settle(1)
    urc = a.take()
    assert '+CDSI: "SM",1' in urc
    lines = a.lines("AT+CMGR=1")
    assert pdu.decode(lines[1]).message_ref == refs[0]
    assert not s.network.sms.pending_reports


def test_multipart_submit_is_reassembled(sim):
    s, (a, b) = ready(sim)
    text = "part " * 60
    refs = send_pdu(s, a, number(s, 1), text, concat_ref=9)
    assert len(refs) == 2
    s.settle(1)
    assert s.network.sms.log[-1]["text"] == text
    stored = s.network.modules[1].sim.store.listing(4)
    joined = "".join(pdu.decode(m.pdu).text for m in stored)
    assert joined == text


def test_remote_phone_multipart_and_ucs2(sim):
    s, (a, b) = ready(sim)
    phone = s.network.add_remote_phone("+15550002")
    phone.send_sms(number(s, 1), "x" * 400)
    phone.send_sms(number(s, 1), "emoji 😀 中文")
    s.settle(1)
    listing = b.lines("AT+CMGL=4")
    headers = [ln for ln in listing if ln.startswith("+CMGL:")]
    assert len(headers) == 4  # three parts plus one UCS2 message
    msgs = [pdu.decode(ln) for ln in listing if not ln.startswith(("+CMGL", "OK"))]
    assert [m.concat.seq for m in msgs[:3]] == [1, 2, 3]
    assert msgs[3].text == "emoji 😀 中文" and msgs[3].encoding == "ucs2"


def test_sms_echo_phone_replies(sim):
    s, (a, b) = ready(sim)
    s.network.add_demo_phones()
    a.cmd("AT+CNMI=2,1,0,0,0")
    send_pdu(s, a, s.network.sms_echo_number, "ping")
    s.settle(3)
    assert '+CMTI: "SM",1' in a.take()
    assert pdu.decode(a.lines("AT+CMGR=1")[1]).text == "ping"
    assert s.network.phone(s.network.sms_echo_number).received_sms[0]["text"] == "ping"


def test_store_fills_up_and_delivery_resumes(sim):
    s, (a, b) = ready(sim)
    module = s.network.modules[1]
    module.sim.store.capacity = 2
    b.cmd('AT+QINDCFG="smsfull",1')
    assert b.lines("AT+CPMS?") == ['+CPMS: "SM",0,2,"SM",0,2,"SM",0,2', "OK"]
    for i in range(3):
        s.network.sms.send("+15550003", number(s, 1), f"m{i}")
    s.settle(0.5)
    out = b.take()
    assert out.count("+CMTI:") == 2 and '+QIND: "smsfull","SM"' in out
    assert b.lines("AT+CPMS?")[0] == '+CPMS: "SM",2,2,"SM",2,2,"SM",2,2'
    assert s.network.sms.log[-1]["status"] == "pending"
    b.cmd("AT+CMGD=1")
    s.settle(0.5)
    assert '+CMTI: "SM",1' in b.take()
    assert s.network.sms.log[-1]["status"] == "delivered"


def test_cmgd_flags_and_cpms_select(sim):
    s, (a, b) = ready(sim)
    for i in range(3):
        s.network.sms.send("+15550004", number(s, 1), f"m{i}")
    s.settle(0.5)
    b.cmd("AT+CMGR=1")
    b.cmd("AT+CMGD=0,1")  # delete read messages
    assert s.network.modules[1].sim.store.used == 2
    b.cmd("AT+CMGD=0,4")
    assert s.network.modules[1].sim.store.used == 0
    assert b.lines('AT+CPMS="ME","ME","ME"') == ["+CPMS: 0,20,0,20,0,20", "OK"]
    assert b.lines('AT+CPMS="XX"') == ["+CMS ERROR: 302"]
    assert b.lines("AT+CPMS=?") == ['+CPMS: ("SM","ME","MT"),("SM","ME","MT"),("SM","ME","MT")',
                                    "OK"]


def test_unreachable_sim_gets_messages_when_it_registers(sim):
    s, (a, b) = ready(sim)
    module = s.network.modules[1]
    s.network.set_coverage(module, False)
    s.network.sms.send("+15550005", number(s, 1), "while away")
    s.settle(0.5)
    assert module.sim.store.used == 0
    s.network.set_coverage(module, True)
    s.settle(3)
    assert module.sim.store.used == 1
    assert '+CMTI: "SM",1' in b.take()


def test_sending_without_network(sim):
    s, (a, b) = ready(sim)
    s.network.set_coverage(s.network.modules[0], False)
    hex_pdu, length = pdu.encode_submit(number(s, 1), "x")[0]
    a.cmd(f"AT+CMGS={length}")
    a.write(hex_pdu.encode() + b"\x1a")
    s.settle(0.2)
    assert "+CMS ERROR: 331" in a.take()
