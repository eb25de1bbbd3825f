"""Call legs (goip_tw.sip.ua) through the real transaction layer on a Clock.

A fake transport records what the stack sends and injects what a peer would.
"""

from twisted.internet.task import Clock

from goip_tw.sip import ua
from goip_tw.sip.message import NameAddr, SipURI, parse_message
from goip_tw.sip.transaction import TransactionLayer
from goip_tw.sip.transport import Address

PEER = Address("udp", "127.0.0.1", 5090)
SDP_OFFER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
            b"m=audio 4000 RTP/AVP 0\r\n"
SDP_ANSWER = SDP_OFFER.replace(b"4000", b"5000")


class FakeTransport:
    def __init__(self):
        self.sent = []
        self.message_received = None

    def send(self, message, dest):
        data = message if isinstance(message, bytes) else message.to_bytes()
        self.sent.append((parse_message(data), dest))

    def send_response(self, response, source):
        self.send(response, source)

    def response_destination(self, response, source):
        return source

    def sent_by(self, transport):
        return "127.0.0.1", 5060

    def inject(self, text: str, body: bytes = b""):
        data = text.replace("\n", "\r\n").encode()
        data = data.replace(b"@@LEN@@", str(len(body)).encode()) + b"\r\n" + body
        self.message_received(parse_message(data), PEER)

    def last(self, kind=None):
        for msg, dest in reversed(self.sent):
            if kind is None or getattr(msg, "method", None) == kind or \
                    getattr(msg, "status", None) == kind:
                return msg
        return None


def stack():
    clock = Clock()
    transport = FakeTransport()
    layer = TransactionLayer(transport, clock)
    core = ua.UaCore(layer, transport, clock, lambda account: "<sip:gw@127.0.0.1:5060>")
    layer.ack_received = core.ack_received
    return clock, transport, layer, core


INVITE = """INVITE sip:13800138000@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKinv1
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>
Call-ID: call-1@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:5090>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: @@LEN@@
"""


def test_inbound_call_answer_ack_info_bye():
    clock, transport, layer, core = stack()
    events, legs = [], []

    def on_request(txn):
        if txn.request.to.tag:
            core.in_dialog(txn)
            return
        leg = core.offer(txn, account="main", identity="address:127.0.0.1", route=None,
                         own_number=False)
        leg.listener = events.append
        legs.append(leg)

    layer.request_received = on_request
    transport.inject(INVITE, SDP_OFFER)
    leg = legs[0]
    assert (leg.caller, leg.callee, leg.caller_display) == ("alice", "13800138000", "Alice")
    assert leg.remote_sdp == SDP_OFFER
    leg.ringing()
    assert transport.last(180) is not None
    leg.answer(SDP_ANSWER)
    ok = transport.last(200)
    assert ok.body == SDP_ANSWER and ok.to.tag == leg.local_tag
    clock.advance(0.5)                       # 2xx retransmitted until the ACK (§13.3.1.4)
    assert sum(1 for m, _ in transport.sent if getattr(m, "status", 0) == 200) == 2
    transport.inject(f"""ACK sip:gw@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKack1
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>;tag={leg.local_tag}
Call-ID: call-1@127.0.0.1
CSeq: 1 ACK
Content-Length: 0
""")
    assert [type(e) for e in events] == [ua.Answered]
    transport.inject(f"""INFO sip:gw@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKinfo1
From: <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>;tag={leg.local_tag}
Call-ID: call-1@127.0.0.1
CSeq: 2 INFO
Content-Type: application/dtmf-relay
Content-Length: @@LEN@@
""", b"Signal=5\r\nDuration=160\r\n")
    assert events[-1] == ua.Dtmf(leg, digit="5", duration_ms=160)
    leg.send_dtmf("#", 120)
    info = transport.last("INFO")
    assert info.body == b"Signal=#\r\nDuration=120\r\n" and str(info.uri) == "sip:alice@127.0.0.1:5090"
    transport.inject(f"""BYE sip:gw@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKbye1
From: <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>;tag={leg.local_tag}
Call-ID: call-1@127.0.0.1
CSeq: 3 BYE
Content-Length: 0
""")
    assert isinstance(events[-1], ua.HungUp) and events[-1].by == "remote"
    assert core.legs == {}
    # a BYE for a dialog that no longer exists gets 481
    transport.inject(f"""BYE sip:gw@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKbye2
From: <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>;tag={leg.local_tag}
Call-ID: call-1@127.0.0.1
CSeq: 4 BYE
Content-Length: 0
""")
    assert transport.last(481) is not None
    clock.advance(64)
    layer.stop()
    assert clock.getDelayedCalls() == []


def test_inbound_cancel_and_reject():
    clock, transport, layer, core = stack()
    events, legs = [], []

    def on_request(txn):
        leg = core.offer(txn, account="main", identity="x", route=None, own_number=False)
        leg.listener = events.append
        legs.append(leg)

    layer.request_received = on_request
    transport.inject(INVITE, SDP_OFFER)
    transport.inject("""CANCEL sip:13800138000@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKinv1
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:13800138000@127.0.0.1>
Call-ID: call-1@127.0.0.1
CSeq: 1 CANCEL
Content-Length: 0
""")
    assert transport.last(487) is not None
    assert events == [ua.Failed(legs[0], code=487, reason="cancelled by caller")]
    transport.inject(INVITE.replace("inv1", "inv2").replace("call-1", "call-2"), SDP_OFFER)
    legs[1].reject(503, "No free line")
    assert transport.last(503).reason == "No free line"
    layer.stop()


def test_no_ack_hangs_up_after_64_t1():
    clock, transport, layer, core = stack()
    events, legs = [], []

    def on_request(txn):
        leg = core.offer(txn, account="main", identity="x", route=None, own_number=False)
        leg.listener = events.append
        legs.append(leg)

    layer.request_received = on_request
    transport.inject(INVITE, SDP_OFFER)
    legs[0].answer(SDP_ANSWER)
    for _ in range(40):
        clock.advance(1)
    assert isinstance(events[-1], ua.HungUp) and events[-1].reason == "no ACK"
    assert transport.last("BYE") is not None
    clock.advance(64)
    layer.stop()
    assert clock.getDelayedCalls() == []


def answer_outbound(transport, status, reason, to_tag="b1", body=b"", extra=""):
    invite = transport.last("INVITE")
    via = invite.headers.get("via")
    ctype = "Content-Type: application/sdp\n" if body else ""
    transport.inject(f"""SIP/2.0 {status} {reason}
Via: {via}
From: {invite.headers.get("from")}
To: {invite.headers.get("to")};tag={to_tag}
Call-ID: {invite.call_id}
CSeq: {invite.cseq[0]} INVITE
Contact: <sip:101@127.0.0.1:5090>
{extra}{ctype}Content-Length: @@LEN@@
""", body)


def test_outbound_call_ringing_early_answer_hangup():
    clock, transport, layer, core = stack()
    user, display, extra = ua.caller_id_headers("pai", "+8613670128297", "", "goip-01",
                                                "127.0.0.1")
    events = []
    leg = core.call(target=SipURI.parse("sip:101@127.0.0.1:5090"), dest=PEER,
                    account="main", line=1,
                    from_=NameAddr(uri=SipURI(host="127.0.0.1", user=user)),
                    local_sdp=SDP_OFFER, extra_headers=extra)
    leg.listener = events.append
    invite = transport.last("INVITE")
    assert invite.from_.uri.user == "goip-01"
    assert invite.headers.get("p-asserted-identity") == "<sip:+8613670128297@127.0.0.1>"
    answer_outbound(transport, 180, "Ringing")
    answer_outbound(transport, 183, "Session Progress", body=SDP_ANSWER)
    answer_outbound(transport, 200, "OK", body=SDP_ANSWER)
    assert [type(e) for e in events] == [ua.Ringing, ua.EarlyMedia, ua.Answered]
    ack = transport.last("ACK")
    assert ack.cseq == (1, "ACK") and ack.to.tag == "b1"
    leg.hangup()
    bye = transport.last("BYE")
    assert str(bye.uri) == "sip:101@127.0.0.1:5090" and bye.cseq == (2, "BYE")
    assert isinstance(events[-1], ua.HungUp) and events[-1].by == "local"
    clock.advance(64)
    layer.stop()


def test_outbound_failure_and_cancel():
    clock, transport, layer, core = stack()
    events = []
    leg = core.call(target=SipURI.parse("sip:101@127.0.0.1:5090"), dest=PEER, account="main",
                    line=1, from_=NameAddr(uri=SipURI(host="127.0.0.1", user="gw")),
                    local_sdp=SDP_OFFER)
    leg.listener = events.append
    answer_outbound(transport, 486, "Busy Here")
    assert events == [ua.Failed(leg, code=486, reason="Busy Here")]
    assert transport.last("ACK") is not None          # the ICT ACKs non-2xx itself
    events.clear()
    leg2 = core.call(target=SipURI.parse("sip:101@127.0.0.1:5090"), dest=PEER,
                     account="main", line=1,
                     from_=NameAddr(uri=SipURI(host="127.0.0.1", user="gw")), local_sdp=b"")
    leg2.listener = events.append
    answer_outbound(transport, 180, "Ringing")
    leg2.cancel()
    assert transport.last("CANCEL") is not None
    answer_outbound(transport, 487, "Request Terminated")
    assert isinstance(events[-1], ua.Failed) and events[-1].code == 487
    clock.advance(64)
    layer.stop()


def test_caller_id_modes():
    assert ua.caller_id_headers("off", "139", "", "goip-01", "d") == ("goip-01", "", [])
    assert ua.caller_id_headers("from", "139", "", "goip-01", "d") == ("139", "139", [])
    user, _, extra = ua.caller_id_headers("rpid", "139", "Bob", "goip-01", "d")
    assert user == "goip-01"
    assert extra == [("Remote-Party-ID",
                      '"Bob" <sip:139@d>;party=calling;screen=yes;privacy=off')]
    assert ua.caller_id_headers("from", "", "", "goip-01", "d") == ("goip-01", "", [])


def test_parse_dtmf_info():
    assert ua.parse_dtmf_info("application/dtmf-relay", b"Signal=*\r\nDuration=250") == ("*", 250)
    assert ua.parse_dtmf_info("application/dtmf", b"7") == ("7", 100)
    assert ua.parse_dtmf_info("application/dtmf-relay", b"Signal=xx") is None
    assert ua.parse_dtmf_info("text/plain", b"Signal=1") is None


def test_mirror_direction_for_hold_and_resume():
    local = SDP_ANSWER + b"a=sendrecv\r\n"
    held = ua.mirror_direction(local, SDP_OFFER + b"a=sendonly\r\n")
    assert b"a=recvonly" in held and b"a=sendrecv" not in held
    assert b"o=- 1 2 IN IP4" in held                       # version raised
    resumed = ua.mirror_direction(held, SDP_OFFER + b"a=sendrecv\r\n")
    assert b"a=sendrecv" in resumed and b"o=- 1 3 IN IP4" in resumed
    assert ua.mirror_direction(resumed, SDP_OFFER) == resumed   # no change, no bump
    inactive = ua.mirror_direction(SDP_ANSWER, SDP_OFFER.replace(b"127.0.0.1\r\nt",
                                                                 b"0.0.0.0\r\nt"))
    assert b"a=recvonly" in inactive                       # RFC 2543 hold (c=0.0.0.0)


def test_uri_user_of_sip_and_tel():
    assert ua.uri_user(SipURI.parse("sip:13800138000@127.0.0.1")) == "13800138000"
    assert ua.uri_user(SipURI.parse("tel:+8613800138000;phone-context=x")) == "+8613800138000"
    assert ua.uri_user(SipURI.parse("sip:127.0.0.1")) == ""
