"""SMPP framing, bind states, timers and every malformed PDU class, on a Clock."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from goip_tw.smpp import pdu as P
from goip_tw.smpp.protocol import Account, SmppError, SmppSettings, SmscProtocol, parse_smpp_time


class Backend:
    def __init__(self):
        self.submits = []
        self.pending = []
        self.hold = False
        self.sessions = []

    def bind(self, system_id, password, mode, host):
        if password != "pw":
            return defer.fail(SmppError(P.ESME_RINVPASWD))
        return defer.succeed(Account(system_id, mode))

    def submit(self, account, message):
        self.submits.append(message)
        if self.hold:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        return defer.succeed(str(len(self.submits)))

    def query(self, account, message_id):
        return defer.succeed(("", P.ENROUTE, 0))

    def cancel(self, account, message_id):
        return defer.fail(SmppError(P.ESME_RCANCELFAIL))

    def session_bound(self, s):
        self.sessions.append(s)

    def session_lost(self, s):
        self.sessions.remove(s)


@pytest.fixture
def env():
    clock = Clock()
    backend = Backend()
    proto = SmscProtocol(backend, clock, SmppSettings(window=2, max_pdu=1024, read_timeout=5,
                                                      inactivity_timeout=60,
                                                      response_timeout=10))
    tr = StringTransport()
    proto.makeConnection(tr)
    yield clock, backend, proto, tr
    proto.connectionLost(None)
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


def pdus(tr):
    data = tr.value()
    tr.clear()
    out = []
    while data:
        n = struct.unpack(">I", data[:4])[0]
        out.append(P.decode(data[:n]))
        data = data[n:]
    return out


def bind(proto, tr, cid=P.BIND_TRANSCEIVER, pw="pw", seq=1):
    proto.dataReceived(P.encode(P.Pdu(cid, seq, params={"system_id": "1", "password": pw})))
    return pdus(tr)


def submit(seq=2, **params):
    base = {"destination_addr": "+4915550", "short_message": b"hi"}
    base.update(params)
    tlvs = base.pop("tlvs", {})
    return P.encode(P.Pdu(P.SUBMIT_SM, seq, params=base, tlvs=tlvs))


def test_roundtrip_every_body():
    for cid in P.BODIES:
        raw = P.encode(P.Pdu(cid, 7))
        assert P.decode(raw).command_id == cid


def test_bind_submit_and_already_bound(env):
    clock, backend, proto, tr = env
    (resp,) = bind(proto, tr)
    assert resp.command_id == P.BIND_TRANSCEIVER | P.RESP and resp.status == 0
    assert resp.tlvs[P.TAG_SC_INTERFACE_VERSION] == b"\x34"
    (again,) = bind(proto, tr, P.BIND_TRANSMITTER, seq=3)
    assert again.status == P.ESME_RALYBND
    proto.dataReceived(submit())
    (r,) = pdus(tr)
    assert r.status == 0 and r["message_id"] == "1"
    assert backend.submits[0].text == "hi"


def test_wrong_password_and_unbound_commands(env):
    clock, backend, proto, tr = env
    (resp,) = bind(proto, tr, pw="bad")
    assert resp.status == P.ESME_RINVPASWD and not resp.params
    proto.dataReceived(submit())
    assert pdus(tr)[0].status == P.ESME_RINVBNDSTS
    proto.dataReceived(P.encode(P.Pdu(P.ENQUIRE_LINK, 9)))
    assert pdus(tr)[0].command_id == P.ENQUIRE_LINK | P.RESP


def test_receiver_cannot_submit(env):
    clock, backend, proto, tr = env
    bind(proto, tr, P.BIND_RECEIVER)
    proto.dataReceived(submit())
    assert pdus(tr)[0].status == P.ESME_RINVBNDSTS


@pytest.mark.parametrize("length", [0, 15, 1025, 0xFFFFFFFF])
def test_bad_command_length_is_nacked_and_never_buffered(env, length):
    clock, backend, proto, tr = env
    proto.dataReceived(struct.pack(">IIII", length, P.SUBMIT_SM, 0, 5))
    (nack,) = pdus(tr)
    assert nack.command_id == P.GENERIC_NACK and nack.status == P.ESME_RINVCMDLEN
    assert tr.disconnecting and len(proto._buf) == 0


def test_unknown_command_gets_generic_nack(env):
    clock, backend, proto, tr = env
    proto.dataReceived(struct.pack(">IIII", 16, 0x00000077, 0, 4))
    (nack,) = pdus(tr)
    assert (nack.command_id, nack.status, nack.sequence) == (P.GENERIC_NACK, P.ESME_RINVCMDID, 4)
    assert not tr.disconnecting


def test_truncated_and_overlong_fields(env):
    clock, backend, proto, tr = env
    bind(proto, tr)
    # body ends inside the fields
    raw = submit()[:30]
    proto.dataReceived(struct.pack(">I", 30) + raw[4:])
    assert pdus(tr)[0].status == P.ESME_RINVMSGLEN
    # a C-octet string longer than its maximum
    body = b"\x00" + b"\x01\x01" + b"A" * 30 + b"\x00"
    proto.dataReceived(struct.pack(">IIII", 16 + len(body), P.SUBMIT_SM, 0, 6) + body)
    assert pdus(tr)[0].status == P.ESME_RINVPARLEN
    # sm_length claims more than there is
    good = bytearray(submit(seq=7))
    good[-3] = 200  # sm_length
    proto.dataReceived(bytes(good))
    assert pdus(tr)[0].status == P.ESME_RINVMSGLEN
    # a TLV whose length runs past the PDU
    bad = submit(seq=8) + struct.pack(">HH", P.TAG_MESSAGE_PAYLOAD, 50) + b"xx"
    bad = struct.pack(">I", len(bad)) + bad[4:]
    proto.dataReceived(bad)
    assert pdus(tr)[0].status == P.ESME_RINVOPTPARSTREAM
    assert backend.submits == []


def test_bad_payload_combinations(env):
    clock, backend, proto, tr = env
    bind(proto, tr)
    proto.dataReceived(submit(tlvs={P.TAG_MESSAGE_PAYLOAD: b"x"}))
    assert pdus(tr)[0].status == P.ESME_RINVPARLEN
    proto.dataReceived(submit(seq=3, data_coding=8, short_message=b"abc"))
    assert pdus(tr)[0].status == P.ESME_RINVPARLEN
    proto.dataReceived(submit(seq=4, data_coding=0x05))
    assert pdus(tr)[0].status == P.ESME_RINVPARLEN
    proto.dataReceived(submit(seq=5, esm_class=0x40, short_message=b"\x09\x00\x03"))
    assert pdus(tr)[0].status == P.ESME_RINVESMCLASS
    proto.dataReceived(submit(seq=6, tlvs={P.TAG_SAR_MSG_REF_NUM: b"\x00\x01"}))
    assert pdus(tr)[0].status == P.ESME_RINVOPTPARAMVAL
    proto.dataReceived(submit(seq=7, destination_addr=""))
    assert pdus(tr)[0].status == P.ESME_RINVDSTADR
    proto.dataReceived(submit(seq=8, validity_period="2501011200000"))
    assert pdus(tr)[0].status == P.ESME_RINVEXPIRY
    proto.dataReceived(submit(seq=9, schedule_delivery_time="991399000000000+"))
    assert pdus(tr)[0].status == P.ESME_RINVSCHED
    assert backend.submits == []


def test_udh_sar_payload_and_codings(env):
    clock, backend, proto, tr = env
    bind(proto, tr)
    proto.dataReceived(submit(esm_class=0x40, short_message=b"\x05\x00\x03\x2a\x03\x02hi"))
    proto.dataReceived(submit(seq=3, short_message=b"", tlvs={
        P.TAG_MESSAGE_PAYLOAD: "€ü😀".encode("utf-16-be"), P.TAG_SAR_MSG_REF_NUM: b"\x01\x00",
        P.TAG_SAR_TOTAL_SEGMENTS: b"\x02", P.TAG_SAR_SEGMENT_SEQNUM: b"\x01"}, data_coding=8))
    proto.dataReceived(submit(seq=4, short_message="café".encode("latin-1"), data_coding=3))
    proto.dataReceived(submit(seq=5, short_message=b"\x1b\x65 \x00", data_coding=0))
    assert [p.status for p in pdus(tr)] == [0, 0, 0, 0]
    a, b, c, d = backend.submits
    assert (a.fragment, a.text) == ((0x2A, 3, 2), "hi")
    assert (b.fragment, b.text) == ((256, 2, 1), "€ü😀")
    assert c.text == "café" and d.text == "€ @"
    proto.dataReceived(submit(seq=6, schedule_delivery_time="000000001000000R",
                              validity_period="000001000000000R"))
    assert pdus(tr)[0].status == 0
    assert (backend.submits[-1].delay, backend.submits[-1].validity) == (600, 86400)


def test_window_throttles(env):
    clock, backend, proto, tr = env
    bind(proto, tr)
    backend.hold = True
    for seq in (2, 3, 4):
        proto.dataReceived(submit(seq=seq))
    (r,) = pdus(tr)
    assert (r.sequence, r.status) == (4, P.ESME_RTHROTTLED)
    backend.pending[0].callback("a")
    backend.pending[1].errback(SmppError(P.ESME_RTHROTTLED))
    r1, r2 = pdus(tr)
    assert (r1.sequence, r1["message_id"]) == (2, "a")
    assert (r2.sequence, r2.status) == (3, P.ESME_RTHROTTLED)


def test_read_timer_closes_a_partial_pdu(env):
    clock, backend, proto, tr = env
    proto.dataReceived(struct.pack(">IIII", 40, P.SUBMIT_SM, 0, 1) + b"abc")
    clock.advance(4.9)
    assert not tr.disconnecting
    clock.advance(0.2)
    assert tr.disconnecting


def test_inactivity_timer(env):
    clock, backend, proto, tr = env
    bind(proto, tr)
    clock.advance(50)
    proto.dataReceived(P.encode(P.Pdu(P.ENQUIRE_LINK, 5)))
    clock.advance(50)
    assert not tr.disconnecting
    clock.advance(11)
    assert tr.disconnecting


def test_deliver_sm_window_resp_and_timeout(env):
    clock, backend, proto, tr = env
    bind(proto, tr, P.BIND_RECEIVER)
    got = []
    d1 = proto.deliver({"source_addr": "1", "destination_addr": "2", "short_message": b"x"})
    d1.addBoth(got.append)
    (dsm,) = pdus(tr)
    assert dsm.command_id == P.DELIVER_SM
    proto.dataReceived(P.encode(P.Pdu(P.DELIVER_SM | P.RESP, dsm.sequence)))
    assert got == [0]
    d2 = proto.deliver({"short_message": b"y"})
    d2.addBoth(got.append)
    clock.advance(10)
    assert isinstance(got[1].value, TimeoutError)
    # A generic_nack answers a deliver_sm too.
    d3 = proto.deliver({"short_message": b"z"})
    d3.addBoth(got.append)
    dsm = pdus(tr)[-1]
    proto.dataReceived(P.generic_nack(dsm.sequence, P.ESME_RINVCMDID))
    assert got[2] == P.ESME_RINVCMDID


def test_unbind_closes(env):
    clock, backend, proto, tr = env
    bind(proto, tr)
    proto.dataReceived(P.encode(P.Pdu(P.UNBIND, 4)))
    assert pdus(tr)[0].command_id == P.UNBIND | P.RESP
    assert tr.disconnecting


def test_smpp_time_formats():
    assert parse_smpp_time("", 0) is None
    assert parse_smpp_time("000001000000000R", 0) == 86400
    assert parse_smpp_time("700101010000000+", 0) is not None
    with pytest.raises(P.PduError):
        parse_smpp_time("abc", 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=64), max_size=20))
def test_random_bytes_never_crash_and_never_overbuffer(chunks):
    clock = Clock()
    proto = SmscProtocol(Backend(), clock, SmppSettings(max_pdu=1024))
    tr = StringTransport()
    proto.makeConnection(tr)
    bind(proto, tr)
    for chunk in chunks:
        if tr.disconnecting:
            break
        proto.dataReceived(chunk)
        assert len(proto._buf) <= 1024
    proto.connectionLost(None)
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(P.BODIES)), st.binary(max_size=120))
def test_every_command_with_garbage_body_gets_an_answer_or_nothing(cid, body):
    clock = Clock()
    proto = SmscProtocol(Backend(), clock, SmppSettings(max_pdu=1024))
    tr = StringTransport()
    proto.makeConnection(tr)
    proto.dataReceived(struct.pack(">IIII", 16 + len(body), cid, 0, 9) + body)
    for p in pdus(tr):
        assert p.sequence == 9 and (p.command_id & P.RESP)
    proto.connectionLost(None)


def test_server_initiated_unbind(env):
    clock, backend, proto, tr = env
    bind(proto, tr)
    done = []
    proto.unbind().addBoth(done.append)
    (u,) = pdus(tr)
    assert u.command_id == P.UNBIND
    proto.dataReceived(P.encode(P.Pdu(P.UNBIND | P.RESP, u.sequence)))
    assert done == [0] and tr.disconnecting
