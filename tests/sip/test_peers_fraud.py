"""Toll fraud: nothing from a stranger ever reaches a line (F-425, F-414, F-415).

Attacks on the gateway's SIP port over 127.0.0.1: INVITE and MESSAGE from
unknown sockets, a spoofed From naming the gateway's own account, wrong
passwords, sipvicious svwar (extension scan) and svcrack (password guessing).
Checks: the recording call layer never sees a leg; the lockout engages; replies
for existing and non-existing users are the same.
"""

from __future__ import annotations

import os
import re

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from goip_tw.config.sections.voip import SipAccount, VoipConfig
from goip_tw.sip.auth import DigestClient
from goip_tw.sip.message import parse_message
from goip_tw.sip.service import SipService
from tests.peers.harness import (free_port, raw_request, run_tool, svcrack_argv,  # noqa: F401
                                 svwar_argv, udp_exchange)
from tests.sip.test_peers_kamailio import SDP, RecordingCalls, sip_config


class RecordingMessages:
    def __init__(self):
        self.messages = []

    def message_received(self, msg):
        self.messages.append(msg)
        return 200


def gateway(voip: VoipConfig, lines: int = 2):
    svc = SipService(reactor, sip_config(), voip, lines)
    calls, messages = RecordingCalls(), RecordingMessages()
    svc.set_call_handler(calls)
    svc.set_message_handler(messages)
    svc.startService()
    return svc, calls, messages


def status_of(replies: list[bytes]) -> list[int]:
    return [int(r[8:11]) for r in replies if r.startswith(b"SIP/2.0 ")]


#: a trunk that trusts only 10.9.9.X: every loopback peer is a stranger
STRANGERS = dict(mode="trunk", trunk_gateway1="10.9.9.1", trunk_gateway2="10.9.9.X")


@pytest_twisted.inlineCallbacks
def test_fresh_install_refuses_invite_and_message_from_anyone():
    svc, calls, messages = gateway(VoipConfig())
    try:
        target = f"sip:13800138000@127.0.0.1:{svc.port}"
        for method, body in (("INVITE", SDP % 4000), ("MESSAGE", b"hello")):
            replies = yield udp_exchange(reactor, svc.port, raw_request(
                method, target, body=body))
            final = [s for s in status_of(replies) if s >= 200]
            assert final and final[0] in (401, 403), replies
        assert calls.legs == [] and messages.messages == []
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_spoofed_from_of_our_own_account_is_refused():
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", password="s3cret",
                                         registrar="10.9.9.1", expires=0),
                      outgoing_auth="address")
    svc, calls, messages = gateway(voip)
    try:
        for from_user in ("goip-01", "admin", "10.9.9.1"):
            replies = yield udp_exchange(reactor, svc.port, raw_request(
                "INVITE", f"sip:0013800138000@127.0.0.1:{svc.port}", from_user=from_user,
                body=SDP % 4000))
            assert 403 in status_of(replies)
        assert calls.legs == []
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("proxy", [False, True], ids=["plain", "embedded-proxy"])
def test_svwar_finds_no_extension_and_rings_no_line(proxy):
    """Extension scans see one answer for every name, registered or not."""
    extra = dict(proxy_enabled=True, proxy_password="pw-7781") if proxy else {}
    svc, calls, messages = gateway(VoipConfig(**STRANGERS, **extra))
    try:
        if proxy:   # a real client is registered: it must not stand out
            from goip_tw.sip.message import SipURI
            from goip_tw.sip.registrar import Binding
            from goip_tw.sip.transport import Address

            svc.registrar._bindings["105"] = [Binding(
                "105", SipURI.parse("sip:105@127.0.0.1:5999"),
                Address("udp", "127.0.0.1", 5999), reactor.seconds() + 600, "c", 1)]
            assert svc.registrar.is_user("105")
        for method in ("INVITE", "REGISTER", "OPTIONS"):
            out, err, code = yield run_tool(reactor, svwar_argv(
                svc.port, free_port(), "100-140", method, "--force"), timeout=90)
            text = (out + err).decode(errors="replace")
            assert "found nothing" in text, text[-2000:]
        assert calls.legs == []
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_svcrack_is_locked_out_before_it_finds_the_password():
    """The password is inside svcrack's range; the lockout stops it long before."""
    svc, calls, messages = gateway(VoipConfig(
        **STRANGERS, proxy_enabled=True, proxy_password="1042"))
    try:
        out, err, code = yield run_tool(reactor, svcrack_argv(
            svc.port, free_port(), "101", "1000-1060"), timeout=20)
        text = (out + err).decode(errors="replace")
        assert "1042" not in text, text[-2000:]
        assert svc.auth.server.is_locked(("127.0.0.1", 0))
        assert svc.registrar.users == [] and calls.legs == []
    finally:
        yield svc.stopService()


class Attacker:
    """A UDP client on its own loopback port that answers challenges (digest client)."""

    def __init__(self):
        from twisted.internet.protocol import DatagramProtocol

        self.replies: list = []
        outer = self

        class Proto(DatagramProtocol):
            def datagramReceived(self, data, addr):
                outer.replies.append(parse_message(data))

        self.port = reactor.listenUDP(0, Proto(), interface="127.0.0.1")
        self.local = self.port.getHost().port
        self.client = DigestClient()

    def request(self, method, target, from_user, n, body=b""):
        text = raw_request(method, target, from_user=from_user, body=body,
                           call_id=f"attack-{n}-{from_user}")
        return parse_message(text.replace(b"@@LOCALPORT@@", str(self.local).encode()))

    @defer.inlineCallbacks
    def send(self, request, gw_port, timeout=3.0):
        """Send and wait for the final response (polling, bounded by ``timeout``)."""
        if "via" not in request.headers:        # the digest client strips ours
            request.headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{self.local};branch="
                                f"z9hG4bK{os.urandom(6).hex()};rport", first=True)
        self.replies.clear()
        self.port.write(request.to_bytes(), ("127.0.0.1", gw_port))
        deadline = reactor.seconds() + timeout
        while reactor.seconds() < deadline and not any(r.status >= 200
                                                       for r in self.replies):
            yield task.deferLater(reactor, 0.02, lambda: None)
        return [r for r in self.replies if r.status >= 200]

    def close(self):
        return self.port.stopListening()


@pytest_twisted.inlineCallbacks
def test_wrong_passwords_lock_out_and_replies_do_not_reveal_users():
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", password="s3cret",
                                         registrar="10.9.9.1", expires=0),
                      outgoing_auth="password")
    svc, calls, messages = gateway(voip)
    attacker = Attacker()
    try:
        target = f"sip:0013800138000@127.0.0.1:{svc.port}"
        shapes = []
        # wrong passwords for a real and an invented user, a new Call-ID every time
        for n, user in enumerate(["goip-01", "nobody", "goip-01", "nobody", "goip-01"]):
            invite = attacker.request("INVITE", target, user, n, SDP % 4000)
            finals = yield attacker.send(invite, svc.port)
            assert finals and finals[0].status == 401
            shapes.append(re.sub(r'nonce="[^"]*"', "", finals[0].headers.get(
                "www-authenticate")))
            answer = attacker.client.authorize(invite, finals[0], user, "guess")
            answer.headers.set("CSeq", "2 INVITE")
            finals = yield attacker.send(answer, svc.port)
            assert finals, "no reply to an answered challenge"
            shapes.append((finals[0].status, finals[0].reason))
        # identical replies: nothing tells an existing user from an invented one
        assert shapes[0] == shapes[2] == shapes[4] == shapes[6] == shapes[8]
        assert set(shapes[1:9:2]) == {(401, "Unauthorized")}
        # the 5th failure (five Call-IDs) locked the source out ...
        assert shapes[9][0] == 403
        # ... so even the right password is refused now
        invite = attacker.request("INVITE", target, "goip-01", 99, SDP % 4000)
        finals = yield attacker.send(invite, svc.port)
        if finals[0].status == 401:
            answer = attacker.client.authorize(invite, finals[0], "goip-01", "s3cret")
            answer.headers.set("CSeq", "2 INVITE")
            finals = yield attacker.send(answer, svc.port)
        assert finals[0].status == 403
        assert calls.legs == []
    finally:
        yield attacker.close()
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_right_password_from_an_unknown_socket_reaches_the_call_layer():
    """The control case: the same path with the account password is admitted."""
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", password="s3cret",
                                         registrar="10.9.9.1", expires=0),
                      outgoing_auth="password")
    svc, calls, messages = gateway(voip)
    calls.answer = False
    attacker = Attacker()
    try:
        target = f"sip:0013800138000@127.0.0.1:{svc.port}"
        invite = attacker.request("INVITE", target, "goip-01", 1, SDP % 4000)
        finals = yield attacker.send(invite, svc.port)
        answer = attacker.client.authorize(invite, finals[0], "goip-01", "s3cret")
        answer.headers.set("CSeq", "2 INVITE")
        yield attacker.send(answer, svc.port)
        assert len(calls.legs) == 1 and calls.legs[0].identity == "user:goip-01"
        calls.legs[0].reject(486)
    finally:
        yield attacker.close()
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_odd_requests_get_clean_errors_and_options_still_works():
    """§8.2 checks before admission; the stack keeps answering afterwards."""
    svc, calls, messages = gateway(VoipConfig(**STRANGERS))
    try:
        target = f"sip:100@127.0.0.1:{svc.port}"
        cases = [
            (raw_request("SUBSCRIBE", target), 405),
            (raw_request("REGISTER", target), 405),                 # no embedded proxy
            (raw_request("INVITE", target, headers="Require: 100rel-x\r\n"), 420),
            (raw_request("INVITE", target.replace("sip:", "im:"), body=b""), 416),
            (raw_request("BYE", target), 481),
            (b"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9"
             b"hG4bKx\r\nCSeq: x\r\n\r\n", None),                      # garbage: 400 or drop
        ]
        for data, expected in cases:
            replies = yield udp_exchange(reactor, svc.port, data,
                                         until=200 if expected else None, wait=0.5)
            codes = [s for s in status_of(replies) if s >= 200]
            if expected is not None:
                assert codes and codes[0] == expected, (data[:40], replies)
        replies = yield udp_exchange(reactor, svc.port, raw_request("OPTIONS", target))
        assert 200 in status_of(replies)
        assert calls.legs == []
    finally:
        yield svc.stopService()
