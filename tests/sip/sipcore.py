"""Shared fixtures for SIP core tests: a recording transport with the real signature."""

from __future__ import annotations

from goip_tw.sip.message import Request, parse_message
from goip_tw.sip.transport import Address, TransportLayer

UAC = Address("udp", "127.0.0.1", 5070)
UAS = Address("udp", "127.0.0.1", 5060)


class RecordingTransport:
    """Stands in for ``TransportLayer``: records what would go on the wire."""

    def __init__(self, reliable: bool = False):
        self.sent: list[tuple[bytes, Address]] = []
        self.message_received = lambda message, source: None
        self.transport = "tcp" if reliable else "udp"
        self.fail_next = None

    def sent_by(self, transport):
        return "127.0.0.1", 5060

    def response_destination(self, response, source):
        return TransportLayer.response_destination(_ViaOnly(), response, source)

    def send(self, message, dest):
        data = message if isinstance(message, bytes) else message.to_bytes()
        self.sent.append((data, dest))
        if self.fail_next is not None:
            from twisted.internet import defer
            err, self.fail_next = self.fail_next, None
            return defer.fail(err)
        return None

    def send_response(self, response, source):
        return self.send(response, self.response_destination(response, source))

    def messages(self):
        return [parse_message(d) for d, _ in self.sent]

    def deliver(self, data: bytes, source: Address = UAC):
        self.message_received(parse_message(data), source)


class _Cfg:
    reply_path = "via"


class _ViaOnly:
    config = _Cfg()


def request(method="OPTIONS", branch="z9hG4bKtest1", call_id="c1@127.0.0.1", cseq=1,
            transport="UDP", body=b"", extra="", uri="sip:gw@127.0.0.1:5060") -> bytes:
    head = (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.1:5070;branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:alice@127.0.0.1>;tag=a1\r\n"
            f"To: <sip:gw@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"{extra}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def outgoing(method="OPTIONS", uri="sip:peer@127.0.0.1:5070") -> Request:
    return Request(method, uri, [
        ("max-forwards", "70"), ("from", "<sip:gw@127.0.0.1>;tag=g1"),
        ("to", f"<{uri}>"), ("call-id", f"out-{method}@127.0.0.1"),
        ("cseq", f"1 {method}")])


def response_to(req_bytes: bytes, status: int, to_tag="b1") -> bytes:
    req = parse_message(req_bytes)
    return req.make_response(status, to_tag=to_tag if status > 100 else None).to_bytes()
