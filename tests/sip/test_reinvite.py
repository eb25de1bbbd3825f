"""re-INVITE inside a call (goip_tw.sip.reinvite): hold/resume both ways, glare (491
with the RFC 3261 §14.1 back-off), late offers, 481/408 and missing ACKs.

The real transaction layer on a Clock, with the recording transport of test_ua.
"""

import random

from goip_tw.sip import reinvite, ua
from goip_tw.sip.message import NameAddr, SipURI

from tests.sip.test_ua import INVITE, PEER, SDP_ANSWER, SDP_OFFER, answer_outbound, stack

LOCAL = SDP_ANSWER + b"a=sendrecv\r\n"


def inbound_call(late=False):
    """An answered, ACKed inbound call; returns (clock, transport, layer, leg, events)."""
    clock, transport, layer, core = stack()
    events, legs = [], []

    def on_request(txn):
        if txn.request.to.tag:
            core.in_dialog(txn)
            return
        leg = core.offer(txn, account="main", identity="x", route=None, own_number=False)
        leg.listener = events.append
        legs.append(leg)

    layer.request_received = on_request
    if late:
        transport.inject(INVITE.replace("Content-Type: application/sdp\n", ""), b"")
    else:
        transport.inject(INVITE, SDP_OFFER)
    leg = legs[0]
    leg.answer(LOCAL)
    ack(transport, leg, 1, SDP_OFFER if late else b"")
    return clock, transport, layer, leg, events


def ack(transport, leg, cseq, body=b"", branch=None):
    ctype = "Content-Type: application/sdp\n" if body else ""
    transport.inject(f"""ACK sip:gw@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch={branch or f"z9hG4bKack{cseq}"}
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>;tag={leg.local_tag}
Call-ID: call-1@127.0.0.1
CSeq: {cseq} ACK
{ctype}Content-Length: @@LEN@@
""", body)


def reinvite_in(transport, leg, cseq, body=b""):
    ctype = "Content-Type: application/sdp\n" if body else ""
    transport.inject(f"""INVITE sip:gw@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKre{cseq}
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>;tag={leg.local_tag}
Call-ID: call-1@127.0.0.1
CSeq: {cseq} INVITE
Contact: <sip:alice@127.0.0.1:5090>
{ctype}Content-Length: @@LEN@@
""", body)


def reply_to_reinvite(transport, status, reason, body=b""):
    """Answer the last INVITE we sent inside the dialog."""
    invite = transport.last("INVITE")
    ctype = "Content-Type: application/sdp\n" if body else ""
    transport.inject(f"""SIP/2.0 {status} {reason}
Via: {invite.headers.get("via")}
From: {invite.headers.get("from")}
To: {invite.headers.get("to")}
Call-ID: {invite.call_id}
CSeq: {invite.cseq[0]} INVITE
Contact: <sip:alice@127.0.0.1:5090>
{ctype}Content-Length: @@LEN@@
""", body)


def finish(clock, layer, leg):
    if not leg.ended:
        leg.hangup()
    clock.advance(64)
    layer.stop()
    assert clock.getDelayedCalls() == []


def test_peer_holds_and_resumes():
    clock, transport, layer, leg, events = inbound_call()
    reinvite_in(transport, leg, 2, SDP_OFFER + b"a=sendonly\r\n")
    ok = transport.last(200)
    assert ok.cseq == (2, "INVITE")
    assert b"a=recvonly" in ok.body and b"o=- 1 2 IN IP4" in ok.body   # §8.4, version+1
    assert events[-1] == ua.Hold(leg, held=True, sdp=SDP_OFFER + b"a=sendonly\r\n")
    clock.advance(0.5)                                   # 2xx retransmitted until the ACK
    assert sum(1 for m, _ in transport.sent if getattr(m, "cseq", (0,))[0] == 2
               and getattr(m, "status", 0) == 200) == 2
    ack(transport, leg, 2)
    reinvite_in(transport, leg, 3, SDP_OFFER + b"a=sendrecv\r\n")
    ok = transport.last(200)
    assert b"a=sendrecv" in ok.body and b"o=- 1 3 IN IP4" in ok.body
    assert events[-1] == ua.Hold(leg, held=False, sdp=SDP_OFFER + b"a=sendrecv\r\n")
    ack(transport, leg, 3)
    # a refresh with a new address: no hold change, but media must follow
    moved = SDP_OFFER.replace(b"4000", b"4100")
    reinvite_in(transport, leg, 4, moved)
    assert events[-1] == ua.MediaChanged(leg, sdp=moved)
    ack(transport, leg, 4)
    # inactive and RFC 2543 c=0.0.0.0 both count as hold
    reinvite_in(transport, leg, 5, SDP_OFFER.replace(b"IN IP4 127.0.0.1\r\nt",
                                                     b"IN IP4 0.0.0.0\r\nt"))
    assert events[-1].held is True
    ack(transport, leg, 5)
    finish(clock, layer, leg)


def test_reinvite_without_sdp_is_answered_in_the_ack():
    clock, transport, layer, leg, events = inbound_call()
    reinvite_in(transport, leg, 2)
    ok = transport.last(200)
    assert ok.body == LOCAL and ok.headers.get("content-type") == "application/sdp"
    assert not any(isinstance(e, ua.Hold) for e in events)
    ack(transport, leg, 2, SDP_OFFER + b"a=inactive\r\n")
    assert events[-1] == ua.Hold(leg, held=True, sdp=SDP_OFFER + b"a=inactive\r\n")
    assert leg.remote_sdp == SDP_OFFER + b"a=inactive\r\n"
    finish(clock, layer, leg)


def test_initial_late_offer_answer_comes_in_the_ack():
    clock, transport, layer, leg, events = inbound_call(late=True)
    assert transport.last(200).body == LOCAL                       # our offer in the 200
    assert events == [ua.Answered(leg, sdp=SDP_OFFER)]
    assert leg.remote_sdp == SDP_OFFER
    finish(clock, layer, leg)


def test_we_hold_and_resume_an_inbound_call():
    clock, transport, layer, leg, events = inbound_call()
    results = []
    leg.hold().addCallback(results.append)
    invite = transport.last("INVITE")
    assert invite.cseq == (1, "INVITE") and invite.to.tag == "a1"
    assert str(invite.uri) == "sip:alice@127.0.0.1:5090"
    assert b"a=sendonly" in invite.body and b"o=- 1 2 IN IP4" in invite.body
    reply_to_reinvite(transport, 200, "OK", SDP_OFFER + b"a=recvonly\r\n")
    assert results == [200]
    assert transport.last("ACK").cseq == (1, "ACK")
    assert leg.updates.local_hold == "sendonly" and b"a=sendonly" in leg.local_sdp
    assert leg.remote_sdp == SDP_OFFER + b"a=recvonly\r\n"
    assert not any(isinstance(e, ua.Hold) for e in events)    # our own hold: no event
    leg.hold().addCallback(results.append)                   # already held: nothing sent
    assert results == [200, 200] and transport.last("INVITE").cseq == (1, "INVITE")
    leg.resume().addCallback(results.append)
    invite = transport.last("INVITE")
    assert invite.cseq == (2, "INVITE") and b"a=sendrecv" in invite.body
    assert b"o=- 1 3 IN IP4" in invite.body
    reply_to_reinvite(transport, 200, "OK", SDP_OFFER + b"a=sendrecv\r\n")
    assert results == [200, 200, 200] and leg.updates.local_hold is None
    # a refused re-INVITE leaves the session as it was (§14.1)
    leg.hold("inactive").addCallback(results.append)
    reply_to_reinvite(transport, 488, "Not Acceptable Here")
    assert results[-1] == 488 and leg.updates.local_hold is None
    assert b"a=inactive" not in leg.local_sdp
    finish(clock, layer, leg)


def outbound_call():
    """A call we placed, answered with a 2xx; (clock, transport, layer, leg)."""
    clock, transport, layer, core = stack()
    leg = core.call(target=SipURI.parse("sip:101@127.0.0.1:5090"), dest=PEER,
                    account="main", line=1,
                    from_=NameAddr(uri=SipURI(host="127.0.0.1", user="gw")), local_sdp=LOCAL)
    answer_outbound(transport, 200, "OK", body=SDP_ANSWER)
    return clock, transport, layer, leg


def test_we_hold_an_outbound_call():
    clock, transport, layer, leg = outbound_call()
    results = []
    leg.hold().addCallback(results.append)
    invite = transport.last("INVITE")
    assert invite.cseq == (2, "INVITE") and invite.to.tag == "b1"
    assert str(invite.uri) == "sip:101@127.0.0.1:5090"
    reply_to_reinvite(transport, 200, "OK", SDP_ANSWER + b"a=recvonly\r\n")
    assert results == [200] and transport.last("ACK").cseq == (2, "ACK")
    finish(clock, layer, leg)


def test_glare_491_both_ways_with_backoff():
    clock, transport, layer, leg, events = inbound_call()
    leg.updates.rng = random.Random(7)
    results = []
    leg.hold().addCallback(results.append)
    first = transport.last("INVITE")
    # the peer's re-INVITE crosses ours: 491 (§14.2)
    reinvite_in(transport, leg, 2, SDP_OFFER + b"a=sendonly\r\n")
    assert transport.last(491) is not None and not any(isinstance(e, ua.Hold)
                                                       for e in events)
    reply_to_reinvite(transport, 491, "Request Pending")
    assert results == [] and transport.last("INVITE") is first
    # we did not place this call: retry within 0-2 s (§14.1)
    clock.advance(2.0)
    second = transport.last("INVITE")
    assert second is not first and second.cseq[0] == first.cseq[0] + 1
    assert b"a=sendonly" in second.body
    reply_to_reinvite(transport, 200, "OK", SDP_OFFER + b"a=recvonly\r\n")
    assert results == [200]
    finish(clock, layer, leg)


def test_glare_backoff_of_the_call_id_owner_and_give_up():
    clock, transport, layer, leg = outbound_call()
    results = []
    leg.hold().addCallback(results.append)
    for attempt in range(reinvite.MAX_GLARE_RETRIES):
        sent = transport.last("INVITE")
        reply_to_reinvite(transport, 491, "Request Pending")
        clock.advance(2.09)                        # we own the Call-ID: 2.1-4 s
        assert transport.last("INVITE") is sent
        clock.advance(1.92)
        assert transport.last("INVITE") is not sent
    reply_to_reinvite(transport, 491, "Request Pending")
    assert results == [491] and leg.updates.local_hold is None
    finish(clock, layer, leg)


def test_glare_delay_bounds():
    rng = random.Random(1)
    owner = [reinvite.glare_delay(True, rng) for _ in range(200)]
    other = [reinvite.glare_delay(False, rng) for _ in range(200)]
    assert min(owner) >= 2.1 and max(owner) <= 4.0
    assert min(other) >= 0 and max(other) <= 2.0
    assert all(abs(round(d * 100) - d * 100) < 1e-6 for d in owner + other)  # 10 ms


def test_481_to_our_reinvite_ends_the_call():
    clock, transport, layer, leg, events = inbound_call()
    results = []
    leg.hold().addCallback(results.append)
    reply_to_reinvite(transport, 481, "Call/Transaction Does Not Exist")
    assert results == [481]
    assert transport.last("BYE") is not None
    assert events[-1] == ua.HungUp(leg, by="local", reason="re-INVITE 481")
    finish(clock, layer, leg)


def test_reinvite_timeout_ends_the_call():
    clock, transport, layer, leg, events = inbound_call()
    results = []
    leg.hold().addCallback(results.append)
    for _ in range(40):
        clock.advance(1)                           # Timer B: 408 from the transaction
    assert results == [408] and isinstance(events[-1], ua.HungUp)
    finish(clock, layer, leg)


def test_no_ack_for_reinvite_200_ends_the_call():
    clock, transport, layer, leg, events = inbound_call()
    reinvite_in(transport, leg, 2, SDP_OFFER + b"a=sendonly\r\n")
    for _ in range(40):
        clock.advance(1)
    assert events[-1] == ua.HungUp(leg, by="local", reason="no ACK for re-INVITE")
    assert transport.last("BYE") is not None
    finish(clock, layer, leg)


def test_second_reinvite_before_ack_gets_500_retry_after():
    clock, transport, layer, leg, events = inbound_call()
    reinvite_in(transport, leg, 2, SDP_OFFER + b"a=sendonly\r\n")
    reinvite_in(transport, leg, 3, SDP_OFFER + b"a=sendrecv\r\n")
    refused = transport.last(500)
    assert refused is not None and refused.headers.get("retry-after") is not None
    ack(transport, leg, 2)
    finish(clock, layer, leg)


def test_hold_requested_before_the_ack_waits_for_it():
    clock, transport, layer, core = stack()
    legs = []

    def on_request(txn):
        if txn.request.to.tag:
            core.in_dialog(txn)
            return
        legs.append(core.offer(txn, account="main", identity="x", route=None,
                               own_number=False))

    layer.request_received = on_request
    transport.inject(INVITE, SDP_OFFER)
    leg = legs[0]
    leg.answer(LOCAL)
    results = []
    leg.hold().addCallback(results.append)
    assert transport.last("INVITE") is None or transport.last("INVITE").cseq[0] == 1
    ack(transport, leg, 1)
    assert b"a=sendonly" in transport.last("INVITE").body
    reply_to_reinvite(transport, 200, "OK", SDP_OFFER + b"a=recvonly\r\n")
    assert results == [200]
    finish(clock, layer, leg)


def test_hold_on_a_call_that_is_gone():
    clock, transport, layer, leg, events = inbound_call()
    leg.hangup()
    results = []
    leg.hold().addCallback(results.append)
    assert results == [481]
    finish(clock, layer, leg)


def test_unusable_offer_in_reinvite_gets_488_and_changes_nothing():
    clock, transport, layer, leg, events = inbound_call()
    before = leg.local_sdp
    reinvite_in(transport, leg, 2, b"v=0\r\nm=video 5000 RTP/AVP 96\r\n")
    assert transport.last(488).cseq == (2, "INVITE")
    assert leg.local_sdp == before and leg.remote_sdp == SDP_OFFER
    assert [type(e) for e in events] == [ua.Answered]
    reinvite_in(transport, leg, 3, SDP_OFFER + b"a=sendonly\r\n")   # still works
    assert events[-1].held is True
    ack(transport, leg, 3)
    finish(clock, layer, leg)


def test_late_offer_ack_with_garbage_is_ignored():
    clock, transport, layer, leg, events = inbound_call()
    reinvite_in(transport, leg, 2)
    ack(transport, leg, 2, b"garbage")
    assert [type(e) for e in events] == [ua.Answered] and leg.remote_sdp == SDP_OFFER
    finish(clock, layer, leg)


# -- random interleavings (hypothesis) -------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

OPS = st.lists(st.one_of(
    st.tuples(st.just("hold"), st.sampled_from(["sendonly", "inactive"])),
    st.tuples(st.just("resume"), st.just(None)),
    st.tuples(st.just("reply"), st.sampled_from([200, 491, 488, 500, 481])),
    st.tuples(st.just("peer"), st.sampled_from([b"a=sendonly\r\n", b"a=sendrecv\r\n",
                                                b"a=inactive\r\n", b"", b"bad"])),
    st.tuples(st.just("ack"), st.sampled_from([b"", SDP_OFFER])),
    st.tuples(st.just("wait"), st.sampled_from([0.5, 2.0, 4.5, 40.0])),
), max_size=25)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_random_reinvite_interleavings_keep_the_leg_consistent(ops):
    """Whatever the order of holds, resumes, replies, crossing re-INVITEs and ACKs:
    nothing raises, every hold()/resume() Deferred fires exactly once, our CSeq only
    grows, and ending the call leaves no timer behind."""
    clock, transport, layer, leg, events = inbound_call()
    results, deferreds = [], []
    cseq = 10
    for op, arg in ops:
        if leg.ended:
            break
        if op == "hold":
            deferreds.append(leg.hold(arg).addCallback(results.append))
        elif op == "resume":
            deferreds.append(leg.resume().addCallback(results.append))
        elif op == "reply":
            invite = transport.last("INVITE")
            if invite is not None:
                body = SDP_OFFER + b"a=recvonly\r\n" if arg == 200 else b""
                reply_to_reinvite(transport, arg, "Whatever", body)
        elif op == "peer":
            cseq += 1
            body = b"garbage" if arg == b"bad" else (SDP_OFFER + arg if arg else b"")
            reinvite_in(transport, leg, cseq, body)
        elif op == "ack":
            ack(transport, leg, cseq, arg)
        else:
            clock.advance(arg)
    sent = [m.cseq[0] for m, _ in transport.sent if getattr(m, "method", None) == "INVITE"]
    assert sent == sorted(sent)                  # retransmissions repeat, never go back
    finish(clock, layer, leg)
    assert len(results) == len(deferreds)
    assert all(isinstance(r, int) for r in results)
