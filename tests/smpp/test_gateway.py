"""The SMSC inside a real GatewayService on the simulator: an smpplib transceiver
submits a UCS2 3-part message to the SMS-echo phone, gets its receipts, and the
phone's reply comes back as deliver_sm (issue 8 "done when", without Kannel); and
receipts for every part combination, mixed outcomes included."""

import pytest_twisted
import smpplib.client
import smpplib.consts as C
import smpplib.gsm
from twisted.internet import defer, reactor, threads

from goip_tw.config.manager import ConfigManager
from goip_tw.gateway import GatewayService
from goip_tw.simulator.smsc import UNDELIVERABLE
from goip_tw.smpp import pdu as P
from tests.modem.simhelp import wait_until

SUBSYSTEMS = (
    ("simulator", "goip_tw.simulator.service"),
    ("modems", "goip_tw.modem.service"),
    ("sms", "goip_tw.sms.service"),
    ("sms_inbound", "goip_tw.sms.inbound_service"),
    ("smpp", "goip_tw.smpp.service"),
)


@defer.inlineCallbacks
def _start_gateway(tmp_path):
    # Port 0, read back: a port probed free and closed again can be taken (the kernel
    # hands it to the next bind(0), e.g. one of the gateway's own) before the SMSC binds.
    overrides = {"simulator": {"enabled": "on", "modules": 2, "slots": 1, "reg_delay": 0.05},
                 "smpp": {"enabled": "on", "port": 0, "interface": "127.0.0.1",
                          "system_id": "1", "password": "pw123"}}
    manager = ConfigManager(str(tmp_path / "goip.toml"), overrides)
    gw = GatewayService(manager, str(tmp_path / "data"), reactor=reactor, subsystems=SUBSYSTEMS)
    gw.startService()
    try:
        modems = gw.subsystem("modems")
        yield wait_until(lambda: modems.lines and all(ln.state == "registered"
                                                      for ln in modems.lines),
                         timeout=30, what="lines registered")
        yield gw.subsystem("sms").queue.ready
        smpp = gw.subsystem("smpp")
        yield wait_until(lambda: smpp.port_number, timeout=30, what="SMSC listening")
        port = smpp.port_number
    except BaseException:
        yield defer.maybeDeferred(gw.stopService)
        raise
    return gw, port


@pytest_twisted.inlineCallbacks
def test_smpplib_to_simulated_phone_receipt_and_reply(tmp_path):
    gw, port = yield _start_gateway(tmp_path)
    try:
        echo = gw.config.simulator.sms_echo_number
        text = "Grüße 😀 " * 20  # 140 characters of UCS2: 3 parts

        def esme():
            c = smpplib.client.Client("127.0.0.1", port, timeout=20,
                                      allow_unknown_opt_params=True)
            c.connect()
            c.bind_transceiver(system_id="1", password="pw123")
            ids = []
            # Split by the client (UDH), a receipt asked on every part: the simulated
            # network reports each part, so each id gets its receipt.
            parts, coding, esm = smpplib.gsm.make_parts(text)
            for part in parts:
                c.send_message(source_addr="+100", destination_addr=echo,
                               short_message=part, data_coding=coding, esm_class=esm,
                               registered_delivery=True, dest_addr_ton=C.SMPP_TON_INTL)
                while True:
                    p = c.read_pdu()
                    if p.command == "submit_sm_resp":
                        ids.append(p.message_id.decode())
                        break
            receipts, mo = [], []
            for _ in range(100):
                if len(receipts) >= 3 and mo:
                    break
                p = c.read_pdu()
                if p.command == "deliver_sm":
                    resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=c)
                    resp.sequence = p.sequence
                    c.send_pdu(resp)
                    (receipts if p.esm_class & P.ESM_DELIVERY_RECEIPT else mo).append(p)
            c.unbind()
            c.disconnect()
            return ids, receipts, mo
        ids, receipts, mo = yield threads.deferToThread(esme)
        assert len(ids) == 3 and [i.split(".")[1] for i in ids] == ["1", "2", "3"]
        assert sorted(p.receipted_message_id.decode() for p in receipts) == ids
        assert all(b"stat:DELIVRD" in p.short_message for p in receipts)
        assert {m.source_addr.decode() for m in mo} == {echo}
        long = next(m for m in mo if m.data_coding == 8)
        payload = long.short_message or long.message_payload  # long: message_payload TLV
        assert payload.decode("utf-16-be") == text
    finally:
        yield defer.maybeDeferred(gw.stopService)

QUIET, MIXED = "+4930555100", "+4930555199"


def _send_and_read(port, submits, want_receipts):
    """ESME thread: send every (params, ref) submit, then read deliver_sm until
    ``want_receipts`` receipts came (MO messages are answered and ignored)."""
    c = smpplib.client.Client("127.0.0.1", port, timeout=30, allow_unknown_opt_params=True)
    c.connect()
    c.bind_transceiver(system_id="1", password="pw123")
    ids = []
    for params in submits:
        c.send_message(source_addr="+100", dest_addr_ton=C.SMPP_TON_INTL, **params)
        while True:
            p = c.read_pdu()
            if p.command == "submit_sm_resp":
                assert p.status == 0, p.status
                ids.append(p.message_id.decode())
                break
    receipts = []
    for _ in range(200):
        if len(receipts) >= want_receipts:
            break
        p = c.read_pdu()
        if p.command == "deliver_sm":
            resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=c)
            resp.sequence = p.sequence
            c.send_pdu(resp)
            if p.esm_class & P.ESM_DELIVERY_RECEIPT:
                receipts.append(p)
    c.unbind()
    c.disconnect()
    return ids, receipts


def _udh_parts(text, dest, ask):
    parts, coding, esm = smpplib.gsm.make_parts(text)
    assert len(parts) == len(ask) == 3
    return [dict(destination_addr=dest, short_message=part, data_coding=coding, esm_class=esm,
                 registered_delivery=rd) for part, rd in zip(parts, ask)]


def _sar_parts(text, dest, ask, ref):
    chunks = [text[i:i + 60] for i in range(0, len(text), 60)]
    assert len(chunks) == len(ask) == 3
    return [dict(destination_addr=dest, short_message=chunk.encode("utf-16-be"), data_coding=8,
                 registered_delivery=rd, sar_msg_ref_num=ref, sar_total_segments=3,
                 sar_segment_seqnum=seq)
            for seq, (chunk, rd) in enumerate(zip(chunks, ask), 1)]


def _payload(text, dest):
    return [dict(destination_addr=dest, short_message=b"", data_coding=8,
                 message_payload=text.encode("utf-16-be"), registered_delivery=1)]


@pytest_twisted.inlineCallbacks
def test_receipts_for_every_part_combination_on_simulated_lines(tmp_path, monkeypatch):
    """Issue 8: smpplib gets delivery receipts for every part combination through the
    real gateway; the simulated network reports every part (TS 23.040 9.2.3.5).

    gateway-split 3 parts: one id, one receipt once all three parts are final;
    client-split with UDH or sar_ TLVs: one receipt per part that asked, each with
    the state combined over all parts (docs/sms-outgoing.rst); one part undeliverable
    makes the whole message UNDELIV."""
    gw, port = yield _start_gateway(tmp_path)
    try:
        net = gw.subsystem("simulator").network
        net.add_remote_phone(QUIET, answer_after=None)
        net.add_remote_phone(MIXED, answer_after=None)
        report = net.sms._report

        def second_part_undeliverable(report_to, recipient, status):
            if recipient != MIXED:
                return report(report_to, recipient, status)
            for i, target in enumerate(report_to):
                report((target,), recipient, UNDELIVERABLE if i == 1 else status)
        monkeypatch.setattr(net.sms, "_report", second_part_undeliverable)
        text = "Grüße 😀 " * 20  # 140 UCS2 characters: 3 parts
        plan = [("split", _payload(text, QUIET)),
                ("udh", _udh_parts(text, QUIET, [1, 0, 1])),
                ("sar", _sar_parts("sar " + text[:150], QUIET, [1, 1, 1], ref=0x1234)),
                ("split-mixed", _payload(text, MIXED)),
                ("udh-mixed", _udh_parts(text, MIXED, [1, 0, 0]))]
        submits = [s for _, group in plan for s in group]
        ids, receipts = yield threads.deferToThread(_send_and_read, port, submits, 8)
        groups, at = {}, 0
        for name, group in plan:
            groups[name] = ids[at:at + len(group)]
            at += len(group)
        assert len(groups["split"]) == 1 and "." not in groups["split"][0]
        assert [i.split(".")[1] for i in groups["udh"]] == ["1", "2", "3"]
        got = {}
        for p in receipts:
            rid = p.receipted_message_id.decode()
            assert rid not in got, f"two receipts for {rid}"
            fields = p.short_message.decode()
            assert f"id:{rid} " in fields
            got[rid] = (fields.split("stat:")[1].split()[0], p.message_state)
        ok, bad = ("DELIVRD", P.DELIVERED), ("UNDELIV", P.UNDELIVERABLE)
        udh, sar = groups["udh"], groups["sar"]
        assert got == {groups["split"][0]: ok, udh[0]: ok, udh[2]: ok,
                       sar[0]: ok, sar[1]: ok, sar[2]: ok,
                       groups["split-mixed"][0]: bad, groups["udh-mixed"][0]: bad}
        queue = gw.subsystem("sms").queue
        states = {}
        for name, group in groups.items():
            info = yield queue.info(int(group[0].split(".")[0]))
            states[name] = (info["state"], [p["state"] for p in info["part_rows"]])
        assert states == {
            "split": ("delivered", ["delivered"] * 3), "udh": ("delivered", ["delivered"] * 3),
            "sar": ("delivered", ["delivered"] * 3),
            "split-mixed": ("failed", ["delivered", "failed", "delivered"]),
            "udh-mixed": ("failed", ["delivered", "failed", "delivered"])}
        # Every part asked the network for a report and got exactly one.
        reports = [e for e in net.events if e["kind"] == "sms_report"]
        assert len(reports) == 15
    finally:
        yield defer.maybeDeferred(gw.stopService)
