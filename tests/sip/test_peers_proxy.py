"""The embedded proxy/registrar (F-415) with real softphones on 127.0.0.1.

baresip and sipsak register with the one client password; OPTIONS and MESSAGE
are answered; a registered baresip calls through the lines (407 challenge, then
the call layer gets the leg); clients are never connected to each other.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor

from goip_tw.config.sections.voip import VoipConfig
from goip_tw.sip.service import SipService
from tests.peers.harness import (baresip_factory, free_port, peer_dir,  # noqa: F401
                                 poll_until, run_tool, sipsak_argv)
from tests.sip.test_peers_fraud import RecordingMessages
from tests.sip.test_peers_kamailio import SDP, RecordingCalls, sip_config

PASSWORD = "proxy-pass-7"


def proxy_gateway(lines: int = 2, **kw):
    voip = VoipConfig(proxy_enabled=True, proxy_password=PASSWORD, **kw)
    svc = SipService(reactor, sip_config(), voip, lines)
    calls, messages = RecordingCalls(), RecordingMessages()
    svc.set_call_handler(calls)
    svc.set_message_handler(messages)
    svc.startService()
    return svc, calls, messages


@pytest_twisted.inlineCallbacks
def test_sipsak_registers_options_and_message(tmp_path):
    svc, calls, messages = proxy_gateway()
    try:
        gw = f"127.0.0.1:{svc.port}"
        local = free_port()
        out, err, code = yield run_tool(reactor, sipsak_argv(
            "-vv", "-s", f"sip:{gw}"), timeout=10)
        assert b"200 OK" in out, out + err
        # usrloc mode: register, query, unregister, with the proxy password
        out, err, code = yield run_tool(reactor, sipsak_argv(
            "-U", "-i", "-C", f"sip:101@127.0.0.1:{local}", "-x", "60",
            "-s", f"sip:101@{gw}", "-a", PASSWORD, "-u", "101"), timeout=15)
        assert code == 0, out + err
        assert svc.registrar.lookup("101") is not None
        # a wrong password does not register
        out, err, code = yield run_tool(reactor, sipsak_argv(
            "-U", "-i", "-C", "sip:102@127.0.0.1:5998", "-x", "60",
            "-s", f"sip:102@{gw}", "-a", "wrong", "-u", "102"), timeout=15)
        assert code != 0 and svc.registrar.lookup("102") is None
        # MESSAGE from the registered user (another socket: 401 path), sipsak answers
        text = "13800138000\nhello from sipsak"
        msg = (f"MESSAGE sip:13800138000@{gw} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKsipsak1;rport\r\n"
               "From: <sip:101@127.0.0.1>;tag=sak1\r\n"
               f"To: <sip:13800138000@{gw}>\r\n"
               "Call-ID: sipsak-message-1@127.0.0.1\r\n"
               "CSeq: 1 MESSAGE\r\n"
               "Max-Forwards: 70\r\n"
               "Content-Type: text/plain;charset=UTF-8\r\n"
               f"Content-Length: {len(text)}\r\n\r\n{text}")
        path = tmp_path / "message.sip"
        path.write_bytes(msg.encode())
        out, err, code = yield run_tool(reactor, sipsak_argv(
            "-vv", "-f", str(path), "-s", f"sip:13800138000@{gw}", "-a", PASSWORD,
            "-u", "101"), timeout=15)
        assert b"200 OK" in out, out + err
        assert len(messages.messages) == 1
        m = messages.messages[0]
        assert (m.sender, m.recipient, m.body) == ("101", "13800138000", text.encode())
        assert m.identity == "user:101" and m.account == "proxy:101"
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_baresip_registers_and_calls_through_the_lines(baresip_factory):
    svc, calls, messages = proxy_gateway(lines=2)
    try:
        gw = f"127.0.0.1:{svc.port}"
        alice = baresip_factory("alice", registrar=gw, password=PASSWORD)
        bob = baresip_factory("bob", registrar=gw, password=PASSWORD)
        yield poll_until(reactor, lambda: svc.registrar.is_user("alice")
                         and svc.registrar.is_user("bob"), timeout=10)
        # a call to a mobile number goes to the lines (407 answered by baresip)
        alice.command("dial", f"sip:13800138000@{gw}")
        yield alice.wait_event(reactor, "CALL_ESTABLISHED", timeout=15)
        leg = calls.legs[0]
        assert (leg.caller, leg.callee) == ("alice", "13800138000")
        assert leg.identity == "user:alice" and leg.account == "proxy:alice"
        assert leg.route.lines == (1, 2) and leg.route.number == "13800138000"
        alice.command("hangup")
        yield poll_until(reactor, lambda: "HungUp" in calls.kinds(), timeout=10)
        # clients are never connected to each other (F-415)
        yield alice.wait_event(reactor, "CALL_CLOSED", timeout=10)
        alice.clear_events()
        alice.command("dial", f"sip:bob@{gw}")
        closed = yield alice.wait_event(reactor, "CALL_CLOSED", timeout=15)
        assert len(calls.legs) == 1 and bob.find_event("CALL_INCOMING") is None
        assert "403" in closed.get("param", ""), closed
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_gateway_calls_a_registered_softphone_extension(baresip_factory):
    """GSM -> VoIP forward to extension ``alice`` (F-463) via the proxy's binding."""
    from goip_tw.sip import ua

    svc, calls, messages = proxy_gateway(lines=1)
    try:
        gw = f"127.0.0.1:{svc.port}"
        alice = baresip_factory("alice", registrar=gw, password=PASSWORD)
        yield poll_until(reactor, lambda: svc.registrar.is_user("alice"), timeout=10)
        events = []
        leg = svc.place_call("alice", caller="13800138000", line=1,
                             local_sdp=SDP % free_port(), caller_id_mode="from")
        leg.listener = events.append
        incoming = yield alice.wait_event(reactor, "CALL_ESTABLISHED", timeout=10)
        assert "13800138000" in incoming["peeruri"]           # caller ID as From user
        yield poll_until(reactor, lambda: any(isinstance(e, ua.Answered) for e in events),
                         timeout=5)
        alice.command("hangup")
        yield poll_until(reactor, lambda: any(isinstance(e, ua.HungUp) for e in events),
                         timeout=10)
        assert events[-1].by == "remote"
    finally:
        yield svc.stopService()
