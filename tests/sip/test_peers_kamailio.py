"""The gateway's SIP service against a real Kamailio on 127.0.0.1.

- an INVITE from baresip through Kamailio reaches the call layer (a recording
  fake), is answered, and the hang-up comes back as an event;
- registration in single-server, per-line and per-group modes with digest auth,
  re-REGISTER before expiry, failover to a backup Kamailio and back, unregister
  on shutdown (F-410, F-412, F-413).

Peers are started by tests/peers/harness.py and stopped by PID.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor

from goip_tw.config.sections.sip import SipConfig
from goip_tw.config.sections.voip import SipAccount, SipGroup, VoipConfig
from goip_tw.sip import ua
from goip_tw.sip.service import SipService
from tests.peers.harness import (baresip_factory, free_port, kamailio,  # noqa: F401
                                 kamailio_factory, peer_dir, poll_until, raw_request,
                                 udp_exchange)
from tests.sip.test_sip_service_wiring import sip_calls_left

SDP = (b"v=0\r\no=goip 1 1 IN IP4 127.0.0.1\r\ns=goip-tw\r\nc=IN IP4 127.0.0.1\r\n"
       b"t=0 0\r\nm=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
       b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
       b"a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")


def sip_config(**kw) -> SipConfig:
    kw.setdefault("local_port", free_port())
    return SipConfig(bind_address="127.0.0.1", tcp=False, keepalive_mode="off",
                     nict_timeout=2.0, ict_timeout=4.0, **kw)


class RecordingCalls:
    """A fake call layer: records legs and events, answers with a static SDP."""

    def __init__(self, answer=True):
        self.legs: list[ua.InboundLeg] = []
        self.events: list = []
        self.answer = answer

    def incoming_call(self, leg):
        self.legs.append(leg)
        leg.listener = self.events.append
        leg.ringing()
        if self.answer:
            leg.answer(SDP % free_port())

    def kinds(self):
        return [type(e).__name__ for e in self.events]


@pytest_twisted.inlineCallbacks
def test_invite_from_baresip_through_kamailio_reaches_call_layer(kamailio, baresip_factory):
    """baresip (alice) -> Kamailio (auth, location lookup) -> gateway -> call layer.

    The gateway registered itself (digest) as goip-01; Kamailio's socket is a
    configured server, so F-425 ``address`` admits the INVITE it relays."""
    kamailio.add_user("goip-01", "gwpass")
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", password="gwpass",
                                         registrar=kamailio.address, expires=60),
                      outgoing_auth="address")
    svc = SipService(reactor, sip_config(), voip, 2)
    calls = RecordingCalls()
    svc.set_call_handler(calls)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: svc.line_voip_registered(1), timeout=10)
        assert kamailio.contacts("goip-01") == [f"sip:goip-01@127.0.0.1:{svc.port}"]
        phone = baresip_factory("alice", registrar=kamailio.address, password="secret")
        yield poll_until(reactor, lambda: kamailio.contacts("alice"), timeout=10)
        phone.command("dial", f"sip:goip-01@{kamailio.address}")
        yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=15)
        yield poll_until(reactor, lambda: "Answered" in calls.kinds(), timeout=5)
        leg = calls.legs[0]
        assert leg.caller == "alice" and leg.callee == "goip-01"
        assert leg.own_number and leg.route.lines == (1, 2)     # two-stage dialing
        assert leg.identity == "address:127.0.0.1"
        assert b"m=audio" in leg.remote_sdp
        phone.command("hangup")
        yield poll_until(reactor, lambda: "HungUp" in calls.kinds(), timeout=10)
        assert calls.events[-1].by == "remote"
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_invite_from_unknown_socket_never_reaches_call_layer(kamailio):
    """Same setup, but the INVITE comes straight from a stranger's socket, not Kamailio."""
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", registrar=kamailio.address,
                                         expires=0), outgoing_auth="address")
    svc = SipService(reactor, sip_config(), voip, 2)
    calls = RecordingCalls()
    svc.set_call_handler(calls)
    svc.startService()
    try:
        replies = yield udp_exchange(reactor, svc.port, raw_request(
            "INVITE", f"sip:13800138000@127.0.0.1:{svc.port}", from_user="goip-01",
            body=SDP % 4000))
        assert calls.legs == []
        assert any(r.startswith(b"SIP/2.0 403") for r in replies), replies
    finally:
        yield svc.stopService()


def reg_voip(kam, **kw) -> VoipConfig:
    return VoipConfig(register_retry=1, failover_after=2, primary_probe=5, **kw)


@pytest_twisted.inlineCallbacks
def test_single_server_registers_reregisters_and_unregisters(kamailio):
    kamailio.add_user("goip-01", "pw1")
    voip = reg_voip(kamailio, account=SipAccount(
        auth_id="goip-01", password="pw1", registrar=kamailio.address, expires=4))
    svc = SipService(reactor, sip_config(), voip, 2)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: svc.line_voip_registered(1), timeout=10)
        assert kamailio.contacts("goip-01") == [f"sip:goip-01@127.0.0.1:{svc.port}"]
        first = kamailio.rpc("ul.lookup", "location", "goip-01")
        cseq = [l for l in first.splitlines() if "CSeq" in l]
        # Kamailio grants 4 s: we must refresh half-way, so the CSeq moves on
        yield poll_until(reactor, lambda: [l for l in kamailio.rpc(
            "ul.lookup", "location", "goip-01").splitlines() if "CSeq" in l] != cseq,
            timeout=8)
        assert svc.line_voip_registered(2)
    finally:
        yield svc.stopService()
    assert kamailio.contacts("goip-01") == []            # unregistered on shutdown
    assert sip_calls_left() == []                         # no timer outlives the service


@pytest_twisted.inlineCallbacks
def test_per_line_auto_configure_registers_every_line(kamailio):
    for n in (1, 2, 3):
        kamailio.add_user(f"goip-0{n}", "pw")
    voip = reg_voip(kamailio, mode="per_line", auto_configure_lines=True, lines=(
        SipAccount(auth_id="goip-01", password="pw", registrar=kamailio.address,
                   prefixes="001", expires=60),))
    svc = SipService(reactor, sip_config(), voip, 3)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: all(svc.line_voip_registered(n) for n in (1, 2, 3)),
                         timeout=10)
        for n in (1, 2, 3):
            assert kamailio.contacts(f"goip-0{n}")
        # the SIM of line 2 loses its network: line 2's registration goes away
        svc.set_line_network(2, False)
        yield poll_until(reactor, lambda: not kamailio.contacts("goip-02"), timeout=5)
        assert not svc.line_voip_registered(2) and svc.line_voip_registered(1)
        svc.set_line_network(2, True)
        yield poll_until(reactor, lambda: kamailio.contacts("goip-02"), timeout=5)
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_per_group_registers_each_group(kamailio):
    kamailio.add_user("cm", "pw-a")
    kamailio.add_user("cu", "pw-b")
    voip = reg_voip(kamailio, mode="per_group", groups=(
        SipGroup(name="cm", lines=(1, 2), account=SipAccount(
            auth_id="cm", password="pw-a", registrar=kamailio.address, prefixes="13")),
        SipGroup(name="cu", lines=(3, 4), account=SipAccount(
            auth_id="cu", password="pw-b", registrar=kamailio.address, prefixes="18"))))
    svc = SipService(reactor, sip_config(), voip, 4)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: kamailio.contacts("cm") and kamailio.contacts("cu"),
                         timeout=10)
        assert all(svc.line_voip_registered(n) for n in (1, 2, 3, 4))
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_failover_to_backup_kamailio_and_back(kamailio_factory):
    users = {"goip-01": "pw1"}
    primary = kamailio_factory(users=users, name="primary", start=False)
    backup = kamailio_factory(users=users, name="backup")
    voip = reg_voip(primary, account=SipAccount(
        auth_id="goip-01", password="pw1", registrar=primary.address,
        backup_registrar=backup.address, expires=60))
    svc = SipService(reactor, sip_config(), voip, 1)
    svc.startService()
    try:
        # the main server is down: two timeouts (2 s each), then the backup
        yield poll_until(reactor, lambda: backup.contacts("goip-01"), timeout=15)
        assert svc.registrations["main"].server == backup.address
        primary.start()
        # the probe (every 5 s) finds the main server again and moves back
        yield poll_until(reactor, lambda: primary.contacts("goip-01"), timeout=15)
        yield poll_until(reactor, lambda: not backup.contacts("goip-01"), timeout=5)
        assert svc.registrations["main"].server == primary.address
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_gateway_calls_and_messages_baresip_through_kamailio(kamailio, baresip_factory):
    """GSM -> VoIP: the gateway (registered as goip-01) INVITEs alice through
    Kamailio, answering its 407 with digest; alice auto-answers; caller ID goes
    in P-Asserted-Identity (F-461).  Then a MESSAGE to alice (F-496)."""
    kamailio.add_user("goip-01", "pw1")
    voip = reg_voip(kamailio, account=SipAccount(
        auth_id="goip-01", password="pw1", registrar=kamailio.address, expires=60))
    svc = SipService(reactor, sip_config(), voip, 2)
    svc.startService()
    try:
        phone = baresip_factory("alice", registrar=kamailio.address, password="secret")
        yield poll_until(reactor, lambda: kamailio.contacts("alice")
                         and svc.line_voip_registered(1), timeout=10)
        events = []
        leg = svc.place_call("alice", caller="+8613670128297", line=1,
                             local_sdp=SDP % free_port(), caller_id_mode="pai")
        leg.listener = events.append
        yield poll_until(reactor, lambda: any(isinstance(e, ua.Answered) for e in events),
                         timeout=15)
        incoming = yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=5)
        assert incoming["direction"] == "incoming"
        assert b"m=audio" in leg.remote_sdp
        leg.hangup()
        yield phone.wait_event(reactor, "CALL_CLOSED", timeout=10)
        assert isinstance(events[-1], ua.HungUp) and events[-1].by == "local"
        code = yield svc.send_message("alice", "+8613670128297\n(L1)你好".encode())
        assert code in (200, 202)
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_trunk_mode_registers_gateway1_and_accepts_x_ranges(kamailio):
    """F-414: Gateway1 registration only with expiry > 0; calls accepted from
    Gateway2/3 lists (X ranges), others refused; 603 when no prefix matches."""
    kamailio.add_user("trunk-01", "tpw")
    voip = VoipConfig(mode="trunk", trunk_gateway1=kamailio.address,
                      trunk_gateway2="10.0.0.X", trunk_gateway3="127.0.0.X",
                      trunk_expires=60, outgoing_auth="address",
                      account=SipAccount(auth_id="trunk-01", password="tpw"),
                      lines=(SipAccount(prefixes="00"), SipAccount()))
    svc = SipService(reactor, sip_config(), voip, 2)
    calls = RecordingCalls(answer=False)
    svc.set_call_handler(calls)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: kamailio.contacts("trunk-01"), timeout=10)
        # 127.0.0.X is in Gateway3: admitted; prefix 00 picks line 1
        yield udp_exchange(reactor, svc.port, raw_request(
            "INVITE", f"sip:0013800138000@127.0.0.1:{svc.port}", body=SDP % 4000), until=180)
        assert len(calls.legs) == 1 and calls.legs[0].route.lines == (1,)
        calls.legs[0].reject(486)
    finally:
        yield svc.stopService()
    assert kamailio.contacts("trunk-01") == []


@pytest_twisted.inlineCallbacks
def test_per_line_without_matching_prefix_is_603():
    voip = VoipConfig(mode="per_line", outgoing_auth="address",
                      trunk_gateway2="127.0.0.1",
                      lines=(SipAccount(prefixes="001"), SipAccount(prefixes="002")))
    svc = SipService(reactor, sip_config(), voip, 2)
    calls = RecordingCalls(answer=False)
    svc.set_call_handler(calls)
    svc.startService()
    try:
        replies = yield udp_exchange(reactor, svc.port, raw_request(
            "INVITE", f"sip:00313800138000@127.0.0.1:{svc.port}", body=SDP % 4000))
        assert any(r.startswith(b"SIP/2.0 603") for r in replies), replies
        assert calls.legs == []
        yield udp_exchange(reactor, svc.port, raw_request(
            "INVITE", f"sip:00213800138000@127.0.0.1:{svc.port}", body=SDP % 4000), until=180)
        assert calls.legs[0].route.lines == (2,)
        assert calls.legs[0].account == "line2"
        calls.legs[0].reject(486)
        # a tel: Request-URI (RFC 3966) routes by its number too
        yield udp_exchange(reactor, svc.port, raw_request(
            "INVITE", "tel:00113800138000;phone-context=+86", body=SDP % 4000), until=180)
        assert calls.legs[1].callee == "00113800138000" and calls.legs[1].route.lines == (1,)
        calls.legs[1].reject(486)
    finally:
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_registers_over_tcp(kamailio_factory):
    """F-201: an account with transport tcp registers over a TCP connection."""
    kam = kamailio_factory(users={"goip-01": "pw1"}, tcp=True)
    voip = reg_voip(kam, account=SipAccount(
        auth_id="goip-01", password="pw1", registrar=kam.address, expires=60,
        transport="tcp"))
    svc = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=free_port(),
                                        keepalive_mode="off"), voip, 1)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: svc.line_voip_registered(1), timeout=10)
        assert kam.contacts("goip-01") == [f"sip:goip-01@127.0.0.1:{svc.port};transport=tcp"]
        assert svc.transport.connections >= 1
    finally:
        yield svc.stopService()
    assert kam.contacts("goip-01") == []


@pytest_twisted.inlineCallbacks
def test_reconfig_moves_the_registration(kamailio):
    """A VoIP settings change from the UI: unregister the old account, register the new;
    a SIP port change re-listens and re-registers with the new Contact."""
    import attrs

    from goip_tw.config.model import default_config
    from goip_tw.config.schema import diff

    kamailio.add_user("goip-01", "pw1")
    kamailio.add_user("goip-02", "pw2")
    old = attrs.evolve(default_config(), sip=sip_config(), voip=reg_voip(
        kamailio, account=SipAccount(auth_id="goip-01", password="pw1",
                                     registrar=kamailio.address)))
    svc = SipService(reactor, old.sip, old.voip, 1)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: kamailio.contacts("goip-01"), timeout=10)
        new = attrs.evolve(old, voip=attrs.evolve(old.voip, account=SipAccount(
            auth_id="goip-02", password="pw2", registrar=kamailio.address)))
        yield svc.reconfig(old, new, diff(old, new))
        yield poll_until(reactor, lambda: kamailio.contacts("goip-02"), timeout=10)
        assert kamailio.contacts("goip-01") == []
        newer = attrs.evolve(new, sip=sip_config())
        yield svc.reconfig(new, newer, diff(new, newer))
        assert svc.port == newer.sip.local_port
        yield poll_until(reactor, lambda: kamailio.contacts("goip-02") == [
            f"sip:goip-02@127.0.0.1:{newer.sip.local_port}"], timeout=10)
    finally:
        yield svc.stopService()
    assert kamailio.contacts("goip-02") == []


@pytest_twisted.inlineCallbacks
def test_message_through_kamailio_reaches_the_sms_layer(kamailio, tmp_path):
    """F-1801: sipsak (alice, digest at Kamailio) -> Kamailio -> gateway MESSAGE."""
    from tests.peers.harness import run_tool, sipsak_argv
    from tests.sip.test_peers_fraud import RecordingMessages

    kamailio.add_user("goip-01", "gwpass")
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", password="gwpass",
                                         registrar=kamailio.address, expires=60),
                      outgoing_auth="address")
    svc = SipService(reactor, sip_config(), voip, 1)
    messages = RecordingMessages()
    svc.set_message_handler(messages)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: svc.line_voip_registered(1), timeout=10)
        text = "13800138000\nhello via kamailio"
        msg = (f"MESSAGE sip:goip-01@{kamailio.address} SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKkam1;rport\r\n"
               "From: <sip:alice@127.0.0.1>;tag=k1\r\n"
               f"To: <sip:goip-01@{kamailio.address}>\r\n"
               "Call-ID: kamailio-message-1@127.0.0.1\r\n"
               "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
               "Content-Type: text/plain;charset=UTF-8\r\n"
               f"Content-Length: {len(text)}\r\n\r\n{text}")
        path = tmp_path / "message.sip"
        path.write_bytes(msg.encode())
        out, err, code = yield run_tool(reactor, sipsak_argv(
            "-vv", "-f", str(path), "-s", f"sip:goip-01@{kamailio.address}",
            "-a", "secret", "-u", "alice"), timeout=15)
        assert b"200 OK" in out, out + err
        m = messages.messages[0]
        assert (m.sender, m.recipient, m.body) == ("alice", "goip-01", text.encode())
        assert m.identity == "address:127.0.0.1"
    finally:
        yield svc.stopService()
