"""§12 dialogs through the transaction layer: route sets, re-INVITE hold, BYE, INFO,
MESSAGE, OPTIONS, 481 for unknown dialogs, and the §8.2 UAS checks."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from goip_tw.sip.dialog import Dialog, DialogTable, check_request, hold_direction
from goip_tw.sip.message import Request, parse_message
from goip_tw.sip.transaction import Timers, TransactionLayer

from sipcore import UAC, RecordingTransport, request

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
HOLD = SDP + b"a=sendonly\r\n"

INVITE = (b"INVITE sip:gw@127.0.0.1:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinv1;rport\r\n"
          b"Record-Route: <sip:p1.example.test;lr>\r\n"
          b"Record-Route: <sip:p2.example.test;lr>\r\n"
          b"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\n"
          b"To: <sip:gw@127.0.0.1>\r\nCall-ID: d1@127.0.0.1\r\nCSeq: 10 INVITE\r\n"
          b"Contact: <sip:alice@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\n"
          b"Content-Length: %d\r\n\r\n" % len(SDP)) + SDP


class TinyUA:
    """A minimal UAS core on dialog.py: answers, tracks hold, ends on BYE."""

    def __init__(self, layer):
        self.layer = layer
        self.table = DialogTable()
        self.events = []
        layer.request_received = self.on_request
        layer.ack_received = lambda req, src: self.events.append(("ack", req.method))

    def on_request(self, txn):
        req = txn.request
        error = check_request(req)
        if error is not None:
            txn.respond(error)
            return
        if req.to.tag:
            dialog = self.table.match(req)
            if dialog is None:
                self.table.reject_unknown(txn)
                return
            bad = dialog.check_incoming(req)
            if bad is not None:
                txn.respond(bad)
                return
            if req.method == "BYE":
                self.table.remove(dialog)
                self.events.append(("bye",))
            elif req.method == "INVITE":
                self.events.append(("reinvite", dialog.session_direction))
            elif req.method == "INFO":
                self.events.append(("info", req.body))
            txn.respond(req.make_response(200, to_tag=dialog.local_tag))
            return
        if req.method == "INVITE":
            tag = self.layer.new_tag()
            self.table.add(Dialog.from_uas(req, tag, txn.source.transport))
            resp = req.make_response(200, to_tag=tag)
            resp.headers.add("contact", "<sip:gw@127.0.0.1:5060>")
            txn.respond(resp)
        elif req.method in ("OPTIONS", "MESSAGE"):
            self.events.append((req.method.lower(), req.body))
            txn.respond(req.make_response(200, to_tag=self.layer.new_tag()))


@pytest.fixture
def env():
    clock = Clock()
    transport = RecordingTransport()
    layer = TransactionLayer(transport, clock, Timers())
    ua = TinyUA(layer)
    yield clock, transport, layer, ua
    clock.advance(64)
    assert clock.getDelayedCalls() == []


def in_dialog(resp_bytes, method, cseq, body=b"", branch="z9hG4bKin"):
    """The peer's in-dialog request built from our 200 (To tag included)."""
    resp = parse_message(resp_bytes)
    extra = "Contact: <sip:alice@127.0.0.1:5070>\r\n"
    if body:
        extra += "Content-Type: application/sdp\r\n"
    raw = request(method, branch=branch, call_id="d1@127.0.0.1", cseq=cseq, body=body,
                  extra=extra)
    return raw.replace(b"To: <sip:gw@127.0.0.1>", b"To: " + resp.headers.get("to").encode()
                       ).replace(b";tag=a1", b";tag=a1")


def test_uas_dialog_reinvite_hold_info_bye_then_481(env):
    clock, transport, layer, ua = env
    transport.deliver(INVITE)
    ok = [d for d, _ in transport.sent if d.startswith(b"SIP/2.0 200")][0]
    dialog = ua.table.match(parse_message(in_dialog(ok, "BYE", 11)))
    assert dialog.route_set == ["<sip:p1.example.test;lr>", "<sip:p2.example.test;lr>"]
    assert str(dialog.remote_target) == "sip:alice@127.0.0.1:5070"
    transport.deliver(in_dialog(ok, "INVITE", 11, HOLD, "z9hG4bKre"))
    transport.deliver(in_dialog(ok, "INFO", 12, b"Signal=5\r\n", "z9hG4bKinfo"))
    transport.deliver(in_dialog(ok, "INFO", 12, b"", "z9hG4bKold"))  # CSeq not higher
    assert parse_message(transport.sent[-1][0]).status == 500
    transport.deliver(in_dialog(ok, "BYE", 13, b"", "z9hG4bKbye"))
    transport.deliver(in_dialog(ok, "BYE", 14, b"", "z9hG4bKbye2"))
    assert parse_message(transport.sent[-1][0]).status == 481
    assert ("reinvite", "sendonly") in ua.events and ("bye",) in ua.events
    assert any(e[0] == "info" for e in ua.events)


def test_uac_dialog_route_set_reversed_and_ack_for_2xx(env):
    clock, transport, layer, ua = env
    inv = Request("INVITE", "sip:bob@127.0.0.1:5070", [
        ("from", "<sip:gw@127.0.0.1>;tag=g1"), ("to", "<sip:bob@127.0.0.1>"),
        ("call-id", "uac1"), ("cseq", "1 INVITE"), ("contact", "<sip:gw@127.0.0.1>")],
        body=SDP)
    txn = layer.start_client(inv, UAC)
    sent = parse_message(transport.sent[0][0])
    resp = sent.make_response(200, to_tag="b9")
    resp.headers.add("record-route", "<sip:p1.example.test;lr>")
    resp.headers.add("record-route", "<sip:p2.example.test;lr>")
    resp.headers.add("contact", "<sip:bob@127.0.0.1:5071>")
    final = []
    txn.result.addCallback(final.append)
    transport.deliver(resp.to_bytes())
    dialog = Dialog.from_uac(inv, final[0])
    assert dialog.route_set == ["<sip:p2.example.test;lr>", "<sip:p1.example.test;lr>"]
    ack = dialog.ack(inv, final[0])
    layer.send_ack(ack, dialog.destination())
    wire = parse_message(transport.sent[-1][0])
    assert wire.method == "ACK" and wire.cseq == (1, "ACK")
    assert wire.top_via.branch != sent.top_via.branch
    assert str(wire.uri) == "sip:bob@127.0.0.1:5071"
    assert wire.headers.get_all("route")[0] == "<sip:p2.example.test;lr>"
    bye = dialog.request("BYE")
    assert bye.cseq == (2, "BYE") and bye.to.tag == "b9" and bye.from_.tag == "g1"


def test_strict_route_puts_target_last():
    d = Dialog("c", parse_message(INVITE).from_, parse_message(INVITE).to.with_tag("x"),
               parse_message(INVITE).uri, ["<sip:strict.example.test>",
                                           "<sip:next.example.test;lr>"], 1)
    req = d.request("BYE")
    assert str(req.uri) == "sip:strict.example.test"
    assert req.headers.get_all("route") == ["<sip:next.example.test;lr>",
                                           "<sip:gw@127.0.0.1:5060>"]


def test_out_of_dialog_options_and_message(env):
    clock, transport, layer, ua = env
    transport.deliver(request("OPTIONS"))
    transport.deliver(request("MESSAGE", branch="z9hG4bKm", body="短信".encode(),
                              extra="Content-Type: text/plain\r\n"))
    assert [parse_message(d).status for d, _ in transport.sent] == [200, 200]
    assert ("message", "短信".encode()) in ua.events


@pytest.mark.parametrize("mutate,status", [
    (lambda r: r.replace(b"OPTIONS sip:gw@127.0.0.1:5060", b"OPTIONS nobodyKnowsThisScheme:x"),
     416),
    (lambda r: r.replace(b"Max-Forwards", b"Require: nothingSupportsThis\r\nMax-Forwards"),
     420),
    (lambda r: r.replace(b"OPTIONS", b"NEWMETHOD"), 405),
])
def test_uas_checks(env, mutate, status):
    clock, transport, layer, ua = env
    transport.deliver(mutate(request("OPTIONS")))
    assert parse_message(transport.sent[-1][0]).status == status


def test_invite_with_unknown_body_type_and_accept(env):
    clock, transport, layer, ua = env
    raw = INVITE.replace(b"Content-Type: application/sdp", b"Content-Type: application/x-what")
    transport.deliver(raw)
    assert parse_message(transport.sent[-1][0]).status == 415
    raw = INVITE.replace(b"z9hG4bKinv1", b"z9hG4bKinv2").replace(
        b"Max-Forwards", b"Accept: text/nobodyKnowsThis\r\nMax-Forwards")
    transport.deliver(raw)
    assert parse_message(transport.sent[-1][0]).status == 406
    for branch in (b"z9hG4bKinv1", b"z9hG4bKinv2"):
        transport.deliver(request("ACK", branch=branch.decode(), call_id="d1@127.0.0.1",
                                  cseq=10))


def test_hold_directions():
    assert hold_direction(SDP) == "sendrecv"
    assert hold_direction(HOLD) == "sendonly"
    assert hold_direction(SDP + b"a=inactive\r\n") == "inactive"
    assert hold_direction(SDP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0")) == "sendonly"
