"""SmscBackend on a Clock: deliver_sm retried until a response, routing of MO to the
right binds (1+N IDs), bind lockout per address, receipt format."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from goip_tw.smpp import pdu as P
from goip_tw.smpp.protocol import Account, SmppError
from goip_tw.smpp.service import SmscBackend, ensure_demo_credentials, parse_message_id


class Session:
    def __init__(self, account, window=10):
        self.account = account
        self.sent = []
        self.window = window

    @property
    def can_deliver(self):
        return len([d for _, _, d in self.sent if not d.called]) < self.window

    def deliver(self, params, tlvs):
        d = defer.Deferred()
        self.sent.append((params, tlvs, d))
        return d


@pytest.fixture
def store(tmp_path, monkeypatch):
    from tests.sms.fakes import make_store

    s = make_store(tmp_path / "b.sqlite", reactor, monkeypatch)
    yield s
    pytest_twisted.blockon(s.stop())


class Queue:
    def subscribe(self, fn):
        return lambda: None


@pytest.fixture
def backend():
    clock = Clock()
    b = SmscBackend(Queue(), clock, "1", "pw", lines=lambda: 4, retry_interval=30,
                    bind_failures=2, bind_block=60, line_number=lambda n: f"+49170000{n}")
    yield clock, b
    b.close()
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


def test_mo_waits_for_a_receiver_and_is_retried_until_answered(backend):
    clock, b = backend
    b.deliver_mo(2, "+4915550001", "hello")
    assert b.pending == 1
    tx = Session(Account("1", "transmitter"))
    line1 = Session(Account("101", "receiver", 1))
    # transmitters and other lines' IDs never get it
    b.sessions += [tx, line1]
    b._pump()
    assert tx.sent == [] and line1.sent == [] and b.pending == 1
    rx = Session(Account("102", "transceiver", 2))
    b.session_bound(rx)
    params, tlvs, d = rx.sent[0]
    assert params["destination_addr"] == "+491700002" and params["short_message"] == b"hello"
    d.errback(TimeoutError("no resp"))
    assert b.pending == 1
    clock.advance(29)
    assert len(rx.sent) == 1
    clock.advance(1)
    assert len(rx.sent) == 2
    rx.sent[1][2].callback(0x64)  # ESME_RX_T_APPN: temporary, retried
    clock.advance(30)
    assert len(rx.sent) == 3
    rx.sent[2][2].callback(P.ESME_ROK)
    assert b.pending == 0
    clock.advance(60)
    assert len(rx.sent) == 3


def test_permanent_refusal_drops_and_line_number_option(backend):
    clock, b = backend
    dev = Session(Account("1", "receiver"))
    b.session_bound(dev)
    b.deliver_mo(3, "+4915550001", "x" * 300)
    params, tlvs, d = dev.sent[0]
    assert params["destination_addr"] == "+491700003"  # "line number" option on
    assert "short_message" not in params and tlvs[P.TAG_MESSAGE_PAYLOAD] == b"x" * 300
    d.callback(0x65)  # ESME_RX_P_APPN: permanent
    assert b.pending == 0


def test_bind_accounts_and_lockout(backend):
    clock, b = backend
    ok = []
    b.bind("1", "pw", "transceiver", "10.0.0.1").addCallback(ok.append)
    b.bind("104", "pw", "receiver", "10.0.0.1").addCallback(ok.append)
    assert ok == [Account("1", "transceiver", None), Account("104", "receiver", 4)]
    errors = []
    for sid, pw in (("105", "pw"), ("1", "no"), ("1", "pw")):
        b.bind(sid, pw, "receiver", "10.0.0.2").addErrback(lambda f: errors.append(f.value.status))
    assert errors == [P.ESME_RINVPASWD, P.ESME_RINVPASWD, P.ESME_RBINDFAIL]
    b.bind("1", "pw", "receiver", "10.0.0.3").addCallback(ok.append)  # other address fine
    assert len(ok) == 3
    clock.advance(61)
    b.bind("1", "pw", "receiver", "10.0.0.2").addCallback(ok.append)
    assert len(ok) == 4


def test_message_ids():
    assert parse_message_id("12") == (12, None)
    assert parse_message_id("12.3") == (12, 3)
    for bad in ("", "a", "1.x", "1" * 70, "-1"):
        with pytest.raises(SmppError):
            parse_message_id(bad)


def test_demo_credentials_are_stable_and_private(tmp_path):
    import os
    import stat

    sid, pw = ensure_demo_credentials(str(tmp_path))
    assert sid == "1" and len(pw) == 8 and pw.isalnum()
    assert ensure_demo_credentials(str(tmp_path)) == (sid, pw)
    mode = os.stat(tmp_path / "smpp-demo-credentials").st_mode
    assert stat.S_IMODE(mode) == 0o600


@pytest_twisted.inlineCallbacks
def test_received_sms_unacknowledged_before_a_restart_are_delivered_after_it(store):
    from goip_tw.sms.inbound import ReceivedSms

    def add(conn, state="received", text="t"):
        return conn.execute("INSERT INTO sms_history (direction, line, peer, text, state,"
                            " created_at) VALUES ('in', 1, '+4917011', ?, ?, 0)",
                            (text, state)).lastrowid
    old = yield store.write(add, "received", "before the SMSC existed")
    clock = Clock()
    b1 = SmscBackend(Queue(), clock, "1", "pw", store=store)
    yield b1.start()
    ids = []
    for text, state in (("one", "received"), ("two", "received"), ("pw", "command"),
                        ("three", "received")):
        ids.append((yield store.write(add, state, text)))
    rx = Session(Account("1", "receiver"))
    b1.session_bound(rx)
    for hid, text in zip(ids, ("one", "two", "pw", "three")):
        if text != "pw":  # intercepted commands are never offered to observers
            b1.sms_received(ReceivedSms(id=hid, line=1, sender="+4917011", text=text, scts=""))
    assert [p["short_message"] for p, _, _ in rx.sent] == [b"one", b"two", b"three"]
    rx.sent[0][2].callback(P.ESME_ROK)
    rx.sent[2][2].callback(P.ESME_ROK)  # "three" acked, "two" still open: cursor stays at one
    yield store.write(lambda conn: None)
    b1.close()
    b2 = SmscBackend(Queue(), clock, "1", "pw", store=store)
    yield b2.start()
    rx2 = Session(Account("1", "transceiver"))
    b2.session_bound(rx2)
    assert [p["short_message"] for p, _, _ in rx2.sent] == [b"two", b"three"]
    assert old < ids[0]  # what came before the first start is not replayed
    for _, _, d in rx2.sent:
        d.callback(P.ESME_ROK)
    yield store.write(lambda conn: None)
    rows = yield store.query("SELECT last_id FROM smpp_mo_cursor")
    assert rows[0][0] == ids[3]
    b2.close()
