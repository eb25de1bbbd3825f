"""Random interleavings of requests, responses, retransmissions, CANCELs, ACKs and
clock steps: the transaction layer never raises, answers every new request once
with a final response, and leaves no transaction or timer behind."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from goip_tw.sip.message import parse_message
from goip_tw.sip.transaction import Timers, TransactionLayer

from sipcore import UAC, RecordingTransport, outgoing, request, response_to

METHODS = ["OPTIONS", "INVITE", "MESSAGE", "BYE"]

step = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(METHODS), st.integers(0, 3)),
    st.tuples(st.just("cancel"), st.integers(0, 3)),
    st.tuples(st.just("ack"), st.integers(0, 3)),
    st.tuples(st.just("answer"), st.integers(0, 3), st.sampled_from([100, 180, 200, 486])),
    st.tuples(st.just("send"), st.sampled_from(["OPTIONS", "INVITE"])),
    st.tuples(st.just("reply"), st.integers(0, 3), st.sampled_from([100, 180, 200, 404])),
    st.tuples(st.just("tick"), st.sampled_from([0.1, 0.5, 2.0, 8.0])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(step, max_size=40))
def test_random_interleavings(steps):
    clock = Clock()
    transport = RecordingTransport()
    layer = TransactionLayer(transport, clock, Timers())
    pending = []
    layer.request_received = pending.append
    clients, finals = [], []
    for s in steps:
        kind = s[0]
        if kind == "request":
            method, n = s[1], s[2]
            transport.deliver(request(method, branch=f"z9hG4bKf{method}{n}",
                                      call_id=f"fz{method}{n}"))
        elif kind == "cancel":
            transport.deliver(request("CANCEL", branch=f"z9hG4bKfINVITE{s[1]}",
                                      call_id=f"fzINVITE{s[1]}"))
        elif kind == "ack":
            transport.deliver(request("ACK", branch=f"z9hG4bKfINVITE{s[1]}",
                                      call_id=f"fzINVITE{s[1]}"))
        elif kind == "answer" and pending:
            txn = pending[s[1] % len(pending)]
            txn.respond(txn.request.make_response(s[2], to_tag="t"))
        elif kind == "send":
            txn = layer.start_client(outgoing(s[1]), UAC)
            txn.result.addCallback(finals.append)
            clients.append(txn)
        elif kind == "reply" and clients:
            txn = clients[s[1] % len(clients)]
            transport.deliver(response_to(txn.data, s[2]))
        elif kind == "tick":
            clock.advance(s[1])
    for txn in pending:  # the TU answers whatever is left
        txn.respond(txn.request.make_response(500, to_tag="t"))
    for txn in clients:  # and gives up on INVITEs that only got provisionals
        if txn.is_invite and txn.state == "proceeding":
            txn.cancel()
    for _ in range(200):
        if not clock.getDelayedCalls():
            break
        clock.advance(1.0)
    assert clock.getDelayedCalls() == []
    assert layer.counts == (0, 0)
    assert len(finals) == len(clients)  # every client transaction ended with a response
    for data, _ in transport.sent:
        parse_message(data)
