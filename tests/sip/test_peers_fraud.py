"""Toll fraud: nothing from a stranger ever reaches a line (F-425, F-414, F-415).

Attacks on the gateway's SIP port over 127.0.0.1: INVITE and MESSAGE from
unknown sockets, a spoofed From naming the gateway's own account, wrong
passwords, sipvicious svwar (extension scan) and svcrack (password guessing).
Checks: the recording call layer never sees a leg; the lockout engages; replies
for existing and non-existing users are the same.
"""

from __future__ import annotations

import re

import pytest
import pytest_twisted
from twisted.internet import reactor

from goip_tw.config.sections.voip import SipAccount, VoipConfig
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
                method, target, body=body), wait=0.3)
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
                body=SDP % 4000), wait=0.3)
            assert 403 in status_of(replies)
        assert calls.legs == []
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_svwar_finds_no_extension_and_rings_no_line():
    svc, calls, messages = gateway(VoipConfig(**STRANGERS))
    try:
        for method in ("INVITE", "REGISTER", "OPTIONS"):
            out, err, code = yield run_tool(reactor, svwar_argv(
                svc.port, free_port(), "100-140", method, "--force"), timeout=90)
            text = (out + err).decode(errors="replace")
            assert "found nothing" in text, text[-2000:]
        assert calls.legs == []
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_svcrack_guesses_no_password():
    svc, calls, messages = gateway(VoipConfig(
        **STRANGERS, proxy_enabled=True, proxy_password="correct-horse-42"))
    try:
        out, err, code = yield run_tool(reactor, svcrack_argv(
            svc.port, free_port(), "101", "1000-1060"), timeout=120)
        text = (out + err).decode(errors="replace")
        assert "found nothing" in text or "could not" in text.lower(), text[-2000:]
        assert not re.search(r"\|\s*101\s*\|\s*\d+", text), text[-2000:]
        assert calls.legs == []
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_wrong_passwords_lock_out_and_replies_do_not_reveal_users():
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", password="s3cret",
                                         registrar="10.9.9.1", expires=0),
                      outgoing_auth="password")
    svc, calls, messages = gateway(voip)
    try:
        from goip_tw.sip.message import parse_message

        target = f"sip:0013800138000@127.0.0.1:{svc.port}"
        # the same challenge shape for a real and an invented user
        shapes = []
        for user in ("goip-01", "nobody-here"):
            replies = yield udp_exchange(reactor, svc.port, raw_request(
                "INVITE", target, from_user=user, body=SDP % 4000), wait=0.3)
            finals = [parse_message(r) for r in replies if not r.startswith(b"SIP/2.0 100")]
            assert finals and finals[0].status == 401
            chal = finals[0].headers.get("www-authenticate")
            shapes.append(re.sub(r'nonce="[^"]*"|opaque="[^"]*"', "", chal))
        assert shapes[0] == shapes[1]
        assert calls.legs == []
    finally:
        yield svc.stopService()
