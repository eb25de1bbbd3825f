"""RFC 3261 §17 transaction timers, every path, on a Clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from goip_tw.sip.message import parse_message
from goip_tw.sip.transaction import Timers, TransactionLayer
from goip_tw.sip.transport import Address

from sipcore import UAC, RecordingTransport, outgoing, request, response_to

T1, T2, T4 = 0.5, 4.0, 5.0
TCP = Address("tcp", "127.0.0.1", 5070)


@pytest.fixture
def env():
    clock = Clock()
    transport = RecordingTransport()
    layer = TransactionLayer(transport, clock, Timers(t1=T1, t2=T2, t4=T4))
    yield clock, transport, layer
    assert clock.getDelayedCalls() == [], "timers left behind"


def advance(clock, total, step=0.125):
    for _ in range(int(round(total / step))):
        clock.advance(step)


def send_times(clock, transport, until, step=0.125):
    """Advance the clock and note when the transport sent something."""
    times, seen = [], len(transport.sent)
    for i in range(int(round(until / step))):
        clock.advance(step)
        if len(transport.sent) > seen:
            times.append(round(clock.seconds(), 2))
            seen = len(transport.sent)
    return times


# ---------------------------------------------------------------- NICT


def test_nict_timer_e_doubles_to_t2_and_timer_f_gives_408(env):
    clock, transport, layer = env
    txn = layer.start_client(outgoing(), UAC)
    results = []
    txn.result.addCallback(results.append)
    times = send_times(clock, transport, 64 * T1 + 0.1)
    # initial send at 0, then E at 0.5, 1.5, 3.5, 7.5, 11.5, ... capped at T2
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(round(b - a, 2) == T2 for a, b in zip(times[3:], times[4:]))
    assert results[0].status == 408 and txn.timed_out
    assert layer.counts == (0, 0)


def test_nict_proceeding_retransmits_every_t2_then_timer_k(env):
    clock, transport, layer = env
    txn = layer.start_client(outgoing(), UAC)
    provisional, final = [], []
    txn.on_provisional = provisional.append
    txn.result.addCallback(final.append)
    sent = transport.sent[0][0]
    transport.deliver(response_to(sent, 180))
    assert txn.state == "proceeding" and provisional[0].status == 180
    times = send_times(clock, transport, 9.0)
    # E was armed for 0.5 before the 180: fires, then every T2
    assert times == [0.5, 4.5, 8.5]
    transport.deliver(response_to(sent, 200))
    transport.deliver(response_to(sent, 200))  # retransmission absorbed
    assert [r.status for r in final] == [200]
    assert txn.state == "completed"
    advance(clock, T4)
    assert txn.state == "terminated" and layer.counts == (0, 0)


def test_nict_reliable_no_retransmissions_timer_k_zero():
    clock = Clock()
    transport = RecordingTransport()
    layer = TransactionLayer(transport, clock, Timers(t1=T1))
    txn = layer.start_client(outgoing(), TCP)
    advance(clock, 10)
    assert len(transport.sent) == 1
    transport.deliver(response_to(transport.sent[0][0], 200))
    assert txn.state == "terminated"
    assert clock.getDelayedCalls() == []


def test_nict_timeout_from_config(env):
    clock, transport, layer = env
    layer.timers = Timers(t1=T1, timer_f=3.0)
    d = layer.send_request(outgoing(), UAC)
    out = []
    d.addCallback(out.append)
    advance(clock, 2.9)
    assert not out
    advance(clock, 0.2)
    assert out[0].status == 408


def test_transport_failure_gives_503(env):
    clock, transport, layer = env
    transport.fail_next = ConnectionRefusedError()
    out = []
    layer.send_request(outgoing(), TCP).addCallback(out.append)
    assert out[0].status == 503
    assert layer.counts == (0, 0)


# ---------------------------------------------------------------- ICT


def test_ict_timer_a_doubles_and_timer_b_gives_408(env):
    clock, transport, layer = env
    txn = layer.start_client(outgoing("INVITE"), UAC)
    out = []
    txn.result.addCallback(out.append)
    times = send_times(clock, transport, 64 * T1 + 0.1)
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert out[0].status == 408 and txn.timed_out


def test_ict_non2xx_acked_timer_d_absorbs_retransmissions(env):
    clock, transport, layer = env
    txn = layer.start_client(outgoing("INVITE"), UAC)
    out = []
    txn.result.addCallback(out.append)
    inv = transport.sent[0][0]
    transport.deliver(response_to(inv, 100))
    advance(clock, 2.0)
    assert len(transport.sent) == 1, "Timer A stops in Proceeding"
    transport.deliver(response_to(inv, 486))
    ack = parse_message(transport.sent[-1][0])
    assert ack.method == "ACK" and ack.cseq == (1, "ACK")
    assert ack.top_via.branch == parse_message(inv).top_via.branch
    assert ack.to.tag == "b1"
    transport.deliver(response_to(inv, 486))
    assert [m.method for m in transport.messages()[1:]] == ["ACK", "ACK"]
    assert [r.status for r in out] == [486]
    advance(clock, 31.9)
    assert txn.state == "completed"
    advance(clock, 0.2)
    assert txn.state == "terminated"


def test_ict_2xx_accepted_state_passes_retransmissions_up(env):
    clock, transport, layer = env
    extra = []
    txn = layer.start_client(outgoing("INVITE"), UAC, on_2xx=extra.append)
    out = []
    txn.result.addCallback(out.append)
    inv = transport.sent[0][0]
    transport.deliver(response_to(inv, 200))
    transport.deliver(response_to(inv, 200))
    assert [r.status for r in out] == [200] and len(extra) == 1
    assert len(transport.sent) == 1, "no ACK for 2xx from the transaction"
    advance(clock, 64 * T1)
    assert txn.state == "terminated"
    strays = []
    layer.stray_response = lambda r, s: strays.append(r)
    transport.deliver(response_to(inv, 200))
    assert len(strays) == 1


def test_ict_cancel_waits_for_provisional(env):
    clock, transport, layer = env
    txn = layer.start_client(outgoing("INVITE"), UAC)
    inv = transport.sent[0][0]
    cancelled = []
    txn.cancel().addCallback(cancelled.append)
    assert len(transport.sent) == 1, "no CANCEL before a provisional (§9.1)"
    transport.deliver(response_to(inv, 180))
    cancel = parse_message(transport.sent[-1][0])
    assert cancel.method == "CANCEL" and cancel.cseq == (1, "CANCEL")
    assert cancel.top_via.branch == parse_message(inv).top_via.branch
    transport.deliver(response_to(transport.sent[-1][0], 200))
    assert cancelled[0].status == 200
    transport.deliver(response_to(inv, 487))
    assert transport.messages()[-1].method == "ACK"
    advance(clock, 40)


# ---------------------------------------------------------------- NIST


def test_nist_absorbs_and_replays_then_timer_j(env):
    clock, transport, layer = env
    seen = []
    layer.request_received = seen.append
    transport.deliver(request())
    assert len(seen) == 1 and seen[0].state == "trying"
    transport.deliver(request())  # retransmission in Trying: absorbed
    assert len(seen) == 1 and transport.sent == []
    seen[0].respond(seen[0].request.make_response(200, to_tag="x"))
    transport.deliver(request())
    assert len(transport.sent) == 2 and transport.sent[0][0] == transport.sent[1][0]
    advance(clock, 64 * T1 - 0.125)
    assert layer.counts == (0, 1), "Timer J still absorbing"
    advance(clock, 0.25)
    assert layer.counts == (0, 0)
    transport.deliver(request())
    assert len(seen) == 2, "after Timer J a copy is a new request"
    seen[1].respond(seen[1].request.make_response(200, to_tag="x"))
    advance(clock, 64 * T1)


def test_nist_response_goes_to_rport(env):
    clock, transport, layer = env
    seen = []
    layer.request_received = seen.append
    src = Address("udp", "127.0.0.1", 40000)
    raw = request().replace(b";rport", b";rport=40000;received=127.0.0.1")
    transport.deliver(raw, src)
    seen[0].respond(seen[0].request.make_response(200, to_tag="x"))
    assert transport.sent[0][1] == src
    advance(clock, 64 * T1)


# ---------------------------------------------------------------- IST


def test_ist_sends_100_then_timer_g_and_h(env):
    clock, transport, layer = env
    seen = []
    layer.request_received = seen.append
    transport.deliver(request("INVITE"))
    assert transport.messages()[0].status == 100
    txn = seen[0]
    timeouts = []
    txn.on_ack_timeout = lambda: timeouts.append(1)
    transport.deliver(request("INVITE"))
    assert len(transport.sent) == 2, "retransmitted INVITE replays the 100"
    txn.respond(txn.request.make_response(486, to_tag="x"))
    times = send_times(clock, transport, 64 * T1 + 0.1)
    # G: 0.5, 1.5, 3.5, 7.5, then every T2 until H at 32
    assert times[:4] == [0.5, 1.5, 3.5, 7.5]
    assert all(round(b - a, 2) == T2 for a, b in zip(times[3:], times[4:]))
    assert txn.state == "terminated" and timeouts == [1]


def test_ist_ack_confirms_then_timer_i(env):
    clock, transport, layer = env
    seen = []
    layer.request_received = seen.append
    transport.deliver(request("INVITE"))
    txn = seen[0]
    txn.respond(txn.request.make_response(603, to_tag="x"))
    transport.deliver(request("ACK"))
    assert txn.state == "confirmed"
    n = len(transport.sent)
    transport.deliver(request("ACK"))  # absorbed
    advance(clock, T4 + 0.1)
    assert len(transport.sent) == n and txn.state == "terminated"


def test_ist_2xx_accepted_then_ack_goes_to_tu(env):
    clock, transport, layer = env
    seen, acks = [], []
    layer.request_received = seen.append
    layer.ack_received = lambda r, s: acks.append(r)
    transport.deliver(request("INVITE"))
    txn = seen[0]
    txn.respond(txn.request.make_response(200, to_tag="x"))
    assert txn.state == "accepted"
    transport.deliver(request("INVITE"))  # replays the 2xx
    assert transport.messages()[-1].status == 200
    transport.deliver(request("ACK", branch="z9hG4bKack2"))
    assert len(acks) == 1
    advance(clock, 64 * T1)
    assert txn.state == "terminated"


def test_ist_cancel_answers_200_and_487(env):
    clock, transport, layer = env
    seen = []
    layer.request_received = seen.append
    transport.deliver(request("INVITE"))
    transport.deliver(request("CANCEL"))
    statuses = [(m.status, m.cseq[1]) for m in transport.messages()]
    assert statuses == [(100, "INVITE"), (200, "CANCEL"), (487, "INVITE")]
    transport.deliver(request("ACK"))
    advance(clock, 64 * T1)


def test_cancel_without_transaction_gets_481(env):
    clock, transport, layer = env
    transport.deliver(request("CANCEL"))
    assert transport.messages()[0].status == 481
    advance(clock, 64 * T1)


def test_tu_cancel_hook(env):
    clock, transport, layer = env
    seen, cancels = [], []
    layer.request_received = seen.append
    transport.deliver(request("INVITE"))
    seen[0].on_cancel = lambda: cancels.append(1)
    transport.deliver(request("CANCEL"))
    assert cancels == [1] and seen[0].state == "proceeding"
    seen[0].respond(seen[0].request.make_response(487, to_tag="t"))
    transport.deliver(request("ACK"))
    advance(clock, 64 * T1)


def test_rfc2543_requests_without_magic_cookie_match(env):
    clock, transport, layer = env
    seen = []
    layer.request_received = seen.append
    transport.deliver(request(branch="oldstyle1"))
    transport.deliver(request(branch="oldstyle1"))
    assert len(seen) == 1
    seen[0].respond(seen[0].request.make_response(200, to_tag="x"))
    advance(clock, 64 * T1)


def test_bad_request_gets_400_naming_field(env):
    clock, transport, layer = env
    transport.deliver(request().replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"))
    resp = transport.messages()[0]
    assert resp.status == 400 and "cseq" in resp.reason
    transport.deliver(request("ACK").replace(b"CSeq: 1 ACK", b"CSeq: 1 BYE"))
    assert len(transport.sent) == 1, "bad ACKs are dropped, never answered"


def test_tu_exception_gets_500_and_abandoned_nist_is_dropped(env):
    clock, transport, layer = env

    def broken(txn):
        raise RuntimeError("TU bug")

    layer.request_received = broken
    transport.deliver(request())
    assert transport.messages()[0].status == 500
    layer.request_received = lambda txn: None  # never answers
    transport.deliver(request(branch="z9hG4bKquiet"))
    advance(clock, 64 * T1 + 0.2)
    assert layer.counts == (0, 0)


def test_full_table_evicts_completed_then_answers_503(env):
    clock, transport, layer = env
    layer.max_server_transactions = 2
    layer.request_received = lambda txn: txn.respond(txn.request.make_response(200))
    for i in range(3):
        transport.deliver(request(branch=f"z9hG4bKdone{i}"))
    assert [m.status for m in transport.messages()] == [200, 200, 200]
    assert layer.counts == (0, 2)
    advance(clock, 64 * T1 + 0.5)
    layer.request_received = lambda txn: None  # pending ones are never evicted
    for i in range(3):
        transport.deliver(request(branch=f"z9hG4bKfull{i}"))
    resp = transport.messages()[-1]
    assert resp.status == 503 and resp.headers.get("retry-after") == "5"
    assert layer.counts == (0, 2)
    advance(clock, 64 * T1 + 0.2)


def test_cancel_nist_terminates_after_timer_j(env):
    clock, transport, layer = env
    layer.request_received = lambda txn: None
    transport.deliver(request("INVITE"))
    transport.deliver(request("CANCEL"))
    transport.deliver(request("ACK"))
    advance(clock, 64 * T1 + 0.5)
    assert layer.counts == (0, 0)


def test_cancel_outcomes_when_invite_completes_first(env):
    clock, transport, layer = env
    txn = layer.start_client(outgoing("INVITE"), UAC)
    out = []
    txn.cancel().addCallback(out.append)
    transport.deliver(response_to(transport.sent[0][0], 486))
    assert out == [None], "final before any provisional: nothing to cancel"
    txn2 = layer.start_client(outgoing("INVITE"), UAC)
    inv = transport.sent[-1][0]
    transport.deliver(response_to(inv, 180))
    out2 = []
    txn2.cancel().addCallback(out2.append)
    cancel = transport.sent[-1][0]
    transport.deliver(response_to(inv, 487))   # the 487 overtakes the CANCEL's 200
    assert out2 == []
    transport.deliver(response_to(cancel, 200))
    assert out2[0].status == 200
    advance(clock, 64 * T1)


def test_flood_keeps_the_table_bounded_and_answers_everyone():
    clock = Clock()
    transport = RecordingTransport()
    layer = TransactionLayer(transport, clock, Timers(), max_server_transactions=500)
    layer.request_received = lambda txn: txn.respond(txn.request.make_response(200))
    for i in range(5000):
        transport.deliver(request(branch=f"z9hG4bKflood{i}", call_id=f"f{i}"))
        assert layer.counts[1] <= 500
    assert len(transport.sent) == 5000
    assert {parse_message(d).status for d, _ in transport.sent[::250]} == {200}
    clock.advance(64 * T1 + 1)
    clock.advance(1)
    assert layer.counts == (0, 0) and clock.getDelayedCalls() == []
