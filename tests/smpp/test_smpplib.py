"""smpplib (a real ESME) against our SMSC on 127.0.0.1: binds, submits, receipts, MO."""

import pytest
import pytest_twisted
import smpplib.client
import smpplib.consts as C
import smpplib.exceptions
import smpplib.gsm
from twisted.internet import defer, reactor, threads

from goip_tw.sms.model import State, StatusReport
from goip_tw.sms.queue import QueueSettings, SmsQueue
from goip_tw.smpp import pdu as P
from goip_tw.smpp.protocol import SmppSettings, SmscFactory
from goip_tw.smpp.service import SmscBackend
from tests.sms.fakes import FakeLine, make_store


@pytest.fixture
def smsc(tmp_path, monkeypatch):
    store = make_store(tmp_path / "s.sqlite", reactor, monkeypatch)
    net = []
    lines = [FakeLine(1, net), FakeLine(2, net)]
    queue = SmsQueue(store, reactor, settings=QueueSettings(sweep_interval=3600))
    for line in lines:
        queue.add_line(line)
    pytest_twisted.blockon(queue.startService())
    backend = SmscBackend(queue, reactor, "1", "secret", lines=lambda: 2,
                          bind_failures=3, bind_block=60, retry_interval=1)
    port = reactor.listenTCP(0, SmscFactory(backend, reactor, SmppSettings()),
                             interface="127.0.0.1")
    env = type("Env", (), {})()
    env.store, env.queue, env.backend, env.net, env.lines = store, queue, backend, net, lines
    env.port = port.getHost().port
    yield env
    backend.close()
    queue.stopService()
    pytest_twisted.blockon(port.stopListening())
    for s in list(backend.sessions):
        s.transport.abortConnection()
    pytest_twisted.blockon(store.stop())


def client(env):
    c = smpplib.client.Client("127.0.0.1", env.port, timeout=5, allow_unknown_opt_params=True)
    c.connect()
    return c


def in_thread(fn, *args):
    return threads.deferToThread(fn, *args)


def read_until(c, pred, limit=50):
    """Read PDUs until pred(pdu) is true; auto-answers deliver_sm like a real ESME."""
    for _ in range(limit):
        p = c.read_pdu()
        if p.command == "deliver_sm":
            resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=c)
            resp.sequence = p.sequence
            c.send_pdu(resp)
        if pred(p):
            return p
    raise AssertionError("expected PDU never came")


def submit_parts(c, text, registered_delivery=False, dest="+4915551234"):
    parts, coding, esm = smpplib.gsm.make_parts(text)
    ids = []
    for part in parts:
        c.send_message(source_addr_ton=C.SMPP_TON_INTL, source_addr="+100",
                       dest_addr_ton=C.SMPP_TON_INTL, destination_addr=dest,
                       short_message=part, data_coding=coding, esm_class=esm,
                       registered_delivery=registered_delivery)
        resp = read_until(c, lambda p: p.command == "submit_sm_resp")
        assert resp.status == 0
        ids.append(resp.message_id.decode())
    return ids


def submit_payload(c, text, registered_delivery=False, dest="+4915551234"):
    """The whole text in message_payload: the gateway splits it (one id, one receipt)."""
    c.send_message(source_addr="+100", destination_addr=dest, short_message=b"",
                   message_payload=text.encode("ascii"), data_coding=0,
                   registered_delivery=registered_delivery)
    resp = read_until(c, lambda p: p.command == "submit_sm_resp")
    assert resp.status == 0
    return [resp.message_id.decode()]


@defer.inlineCallbacks
def wait_for(pred, rounds=100):
    for _ in range(rounds):
        if pred():
            return
        d = defer.Deferred()
        reactor.callLater(0.02, d.callback, None)
        yield d
    raise AssertionError("condition never met")


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("mode", ["transmitter", "transceiver"])
def test_bind_and_submit_gsm7_ucs2_and_long(smsc, mode):
    def esme():
        c = client(smsc)
        getattr(c, f"bind_{mode}")(system_id="1", password="secret")
        a = submit_parts(c, "Hello from smpplib")
        b = submit_parts(c, "Grüße 😀 from UCS2")
        long = submit_parts(c, "0123456789" * 40)  # 400 GSM7 chars: 3 UDH parts
        c.unbind()
        c.disconnect()
        return a, b, long
    a, b, long = yield in_thread(esme)
    assert len(a) == len(b) == 1 and len(long) == 3
    mid = long[0].split(".")[0]
    assert long == [f"{mid}.1", f"{mid}.2", f"{mid}.3"]
    yield wait_for(lambda: len(smsc.net) >= 5)
    texts = [n[2] for n in smsc.net]
    assert texts[0] == "Hello from smpplib" and texts[1] == "Grüße 😀 from UCS2"
    assert "".join(texts[2:]) == "0123456789" * 40
    assert {n[0] for n in smsc.net[2:]} == {smsc.net[2][0]}  # one line for all parts
    assert smsc.queue.accepted == 3


@pytest_twisted.inlineCallbacks
def test_receiver_cannot_submit_and_gets_mo(smsc):
    def esme():
        c = client(smsc)
        c.bind_receiver(system_id="1", password="secret")
        # smpplib itself refuses to submit when bound as receiver: write the PDU raw.
        c._socket.sendall(P.encode(P.Pdu(P.SUBMIT_SM, 77, params={
            "destination_addr": "2", "short_message": b"x"})))
        resp = c.read_pdu()
        assert (resp.command, resp.status) == ("submit_sm_resp", P.ESME_RINVBNDSTS)
        reactor.callFromThread(smsc.backend.deliver_mo, 1, "+4917012345", "Antwort ✓")
        p = read_until(c, lambda p: p.command == "deliver_sm")
        c.unbind()
        c.disconnect()
        return p
    p = yield in_thread(esme)
    assert p.source_addr == b"+4917012345" and p.destination_addr == b"1"
    assert p.short_message.decode("utf-16-be") == "Antwort ✓" and p.data_coding == 8


@pytest_twisted.inlineCallbacks
def test_line_ids_and_bad_passwords(smsc):
    def esme():
        out = []
        for sid, pw in (("101", "secret"), ("103", "secret"), ("1", "nope"), ("1", "nope"),
                        ("1", "nope"), ("1", "secret")):
            c = client(smsc)
            try:
                c.bind_transmitter(system_id=sid, password=pw)
                if sid == "101":
                    submit_parts(c, "via line one")
                out.append(0)
                c.unbind()
            except smpplib.exceptions.PDUError as e:
                out.append(e.args[1])
            except smpplib.exceptions.ConnectionError:
                out.append("closed")
            c.disconnect()
        return out
    out = yield in_thread(esme)
    # 103 does not exist (2 lines); after 3 failures the address is blocked.
    assert out == [0, P.ESME_RINVPASWD, P.ESME_RINVPASWD, P.ESME_RINVPASWD, P.ESME_RBINDFAIL,
                   P.ESME_RBINDFAIL]
    yield wait_for(lambda: smsc.net)
    assert smsc.net[0][0] == 1


def _receipt_fields(p):
    text = p.short_message.decode()
    fields = dict(item.split(":", 1) for item in
                  text.replace("submit date", "submit_date").replace("done date", "done_date")
                  .split(" ") if ":" in item)
    return fields, p.receipted_message_id.decode(), p.message_state


@pytest_twisted.inlineCallbacks
def test_receipts_for_every_part_combination(smsc):
    """single ok/failed, gateway-split 2 parts ok / one failed, client-split 3 parts
    (one receipt per submitted part, each with the state combined over all parts)."""
    def submit_all():
        c = client(smsc)
        c.bind_transceiver(system_id="1", password="secret")
        ids = [submit_parts(c, "one", True), submit_parts(c, "two", True),
               submit_payload(c, "x" * 200, True), submit_payload(c, "y" * 200, True)]
        # A message the client splits with UDH: one id (and one receipt) per part.
        ids.append(submit_parts(c, "z" * 400, True))
        return c, ids
    c, ids = yield in_thread(submit_all)
    yield wait_for(lambda: len(smsc.net) == 1 + 1 + 2 + 2 + 3)
    mr = {}
    for line, dest, text, concat, ref in smsc.net:
        mr.setdefault(text[0], []).append((line, ref))
    outcome = {"o": [True], "t": [False], "x": [True, True], "y": [True, False],
               "z": [True, False, True]}
    for key, results in outcome.items():
        for (line, ref), ok in zip(mr[key], results):
            yield smsc.queue.on_status_report(StatusReport(line, ref, ok, status=0 if ok else 65))

    def read_receipts():
        got = []
        while len(got) < 7:  # the client-split message gets one per part (combined state)
            got.append(read_until(c, lambda p: p.command == "deliver_sm"))
        c.unbind()
        c.disconnect()
        return got
    got = yield in_thread(read_receipts)
    by_id = {}
    for p in got:
        assert p.esm_class == P.ESM_DELIVERY_RECEIPT
        fields, rid, state = _receipt_fields(p)
        assert fields["id"] == rid
        by_id[rid] = (fields["stat"], state, fields["dlvrd"])
    z = ids[4]
    assert by_id == {
        ids[0][0]: ("DELIVRD", P.DELIVERED, "001"), ids[1][0]: ("UNDELIV", P.UNDELIVERABLE, "000"),
        ids[2][0]: ("DELIVRD", P.DELIVERED, "001"), ids[3][0]: ("UNDELIV", P.UNDELIVERABLE, "000"),
        z[0]: ("UNDELIV", P.UNDELIVERABLE, "000"), z[1]: ("UNDELIV", P.UNDELIVERABLE, "000"),
        z[2]: ("UNDELIV", P.UNDELIVERABLE, "000")}


@pytest_twisted.inlineCallbacks
def test_gateway_split_receipt_waits_for_every_part(smsc):
    """A 3-part text split by us: one message_id and one receipt, sent only once the
    third part's report made the whole message final (reports come per part)."""
    c = yield in_thread(client, smsc)
    yield in_thread(lambda: c.bind_transceiver(system_id="1", password="secret"))
    (mid,) = yield in_thread(submit_payload, c, "w" * 400, True)
    yield wait_for(lambda: len(smsc.net) == 3)

    def nothing_pending():
        # An enquire_link round trip: a receipt already sent would arrive before it.
        c.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=c))
        p = read_until(c, lambda p: p.command in ("enquire_link_resp", "deliver_sm"))
        return p.command
    for line, dest, text, concat, ref in smsc.net[:2]:
        yield smsc.queue.on_status_report(StatusReport(line, ref, True))
        yield smsc.store.read(lambda conn: None)  # the receipt's info read has run
        assert (yield in_thread(nothing_pending)) == "enquire_link_resp"
    line, dest, text, concat, ref = smsc.net[2]
    yield smsc.queue.on_status_report(StatusReport(line, ref, True))
    p = yield in_thread(read_until, c, lambda p: p.command == "deliver_sm")
    fields, rid, state = _receipt_fields(p)
    assert (rid, fields["stat"], state) == (mid, "DELIVRD", P.DELIVERED)
    assert (yield in_thread(nothing_pending)) == "enquire_link_resp"  # one receipt only
    yield in_thread(c.unbind)
    c.disconnect()


@pytest_twisted.inlineCallbacks
def test_query_and_cancel(smsc):
    for line in smsc.lines:
        line.ok = False  # nothing leaves, so cancel is still possible

    def esme():
        c = client(smsc)
        # smpplib only allows query_sm/cancel_sm in RX/TRX states; SMPP 3.4 §4.8 wants TX/TRX.
        c.bind_transceiver(system_id="1", password="secret")
        (mid,) = submit_parts(c, "cancel me")
        c.query_message(message_id=mid, source_addr="+100")
        q = read_until(c, lambda p: p.command == "query_sm_resp")
        # smpplib has no cancel_sm: send and read it raw with our codec.
        def cancel(seq):
            c._socket.sendall(P.encode(P.Pdu(P.CANCEL_SM, seq, params={
                "message_id": mid, "source_addr": "+100", "destination_addr": "+4915551234"})))
            head = c._recv_exact(16)
            return P.decode(head + c._recv_exact(int.from_bytes(head[:4], "big") - 16))
        r, r2 = cancel(900), cancel(901)
        c.query_message(message_id="999999", source_addr="+100")
        q2 = read_until(c, lambda p: p.command == "query_sm_resp")
        c.query_message(message_id=mid, source_addr="+100")
        q3 = read_until(c, lambda p: p.command == "query_sm_resp")
        c.unbind()
        c.disconnect()
        return mid, q, r, r2, q2, q3
    mid, q, r, r2, q2, q3 = yield in_thread(esme)
    assert q.status == 0 and q.message_state == P.ENROUTE
    assert (r.command_id, r.status) == (P.CANCEL_SM | P.RESP, 0)
    assert r2.status == P.ESME_RCANCELFAIL
    assert q2.status == P.ESME_RINVMSGID
    assert q3.message_state == P.DELETED
    info = yield smsc.queue.info(int(mid))
    assert info["state"] == State.CANCELLED.value
