"""A tiny SIP UAS/UAC on UDP for media tests against real phones (not our SIP stack).

It answers one INVITE with the SDP our MediaService makes, answers BYE, and can
send BYE itself.  Only enough of RFC 3261 for one dialog on 127.0.0.1.
"""

from __future__ import annotations

import uuid

from twisted.internet.protocol import DatagramProtocol


def _headers(text: str):
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        hdrs.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], hdrs, body


class SipStub(DatagramProtocol):
    def __init__(self, on_invite, on_bye=None):
        self.on_invite = on_invite   # (sdp bytes) -> answer sdp bytes
        self.on_bye = on_bye
        self.dialog = None
        self.log = []

    def datagramReceived(self, data, addr):
        text = data.decode("utf-8", "replace")
        first, hdrs, body = _headers(text)
        self.log.append(first)
        if first.startswith("SIP/2.0"):
            return
        method = first.split()[0]
        if method == "INVITE":
            if self.dialog is None:
                answer = self.on_invite(body.encode())
                tag = uuid.uuid4().hex[:8]
                self.dialog = dict(addr=addr, tag=tag, hdrs=hdrs, answer=answer)
            self._reply(hdrs, addr, "200 OK", self.dialog["answer"], self.dialog["tag"])
        elif method == "BYE":
            self._reply(hdrs, addr, "200 OK", b"", self.dialog["tag"] if self.dialog else "x")
            if self.on_bye is not None:
                self.on_bye()
        elif method in ("OPTIONS", "CANCEL"):
            self._reply(hdrs, addr, "200 OK", b"", "x")

    def _reply(self, hdrs, addr, status, body: bytes, tag):
        to = hdrs["to"][0]
        if ";tag=" not in to:
            to += f";tag={tag}"
        host = self.transport.getHost()
        lines = [f"SIP/2.0 {status}"] + [f"Via: {v}" for v in hdrs.get("via", [])] + [
            f"From: {hdrs['from'][0]}", f"To: {to}", f"Call-ID: {hdrs['call-id'][0]}",
            f"CSeq: {hdrs['cseq'][0]}", f"Contact: <sip:gw@{host.host}:{host.port}>",
            "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body, addr)

    def bye(self):
        d = self.dialog
        if d is None:
            return
        h = d["hdrs"]
        host = self.transport.getHost()
        contact = h.get("contact", [f"<sip:x@{d['addr'][0]}:{d['addr'][1]}>"])[0]
        uri = contact.split("<", 1)[-1].split(">", 1)[0]
        to = h["to"][0] + f";tag={d['tag']}"
        lines = [f"BYE {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {host.host}:{host.port};branch=z9hG4bK{uuid.uuid4().hex[:10]}",
                 f"From: {to}", f"To: {h['from'][0]}", f"Call-ID: {h['call-id'][0]}",
                 "CSeq: 2 BYE", "Max-Forwards: 70", "Content-Length: 0"]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode(), d["addr"])
