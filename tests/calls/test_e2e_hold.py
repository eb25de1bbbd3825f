"""Hold/resume by re-INVITE with baresip (Debian) on 127.0.0.1 (issue 7 item 5).

- baresip calls a mobile number through Kamailio and the gateway; its ``hold``
  command (a re-INVITE with ``a=sendonly``) reaches the module as AT+CHLD=2 (the
  simulated network shows the call held), ``resume`` retrieves it and the echoed
  440 Hz tone comes back.
- call waiting mode 1: the first mobile caller talks to baresip "bob"; a second
  caller gets a call of its own to baresip "carol"; when carol answers the
  gateway's re-INVITE puts bob on hold -- seen in bob's own SIP trace (baresip
  logs what it receives) -- and resumes him when the second caller hangs up.

Peers come from tests/peers/harness.py and are stopped by PID.
"""

from __future__ import annotations

import glob
import wave

import pytest_twisted
from twisted.internet import reactor

from goip_tw.config.sections.calls import CallsConfig, LineCalls
from tests.calls.test_e2e_peers import (alice_dials, defer_sleep, dominant_pcm,  # noqa: F401
                                        gateway_factory, media_for)
from tests.peers.harness import poll_until


def mobile_states(gw):
    """Call states as the module reports them (AT+CLCC: active, held, waiting)."""
    return sorted(c.state for c in gw.modems[0].calls)


def tail_of_recording(phone, seconds):
    """(PCM of the last ``seconds`` of baresip's decoded recording, all of it)."""
    dumps = sorted(glob.glob(str(phone.workdir / "dump-*-dec.wav")))
    assert dumps, phone.log_text()[-2000:]
    with wave.open(dumps[-1], "rb") as w:
        pcm = w.readframes(w.getnframes())
    return pcm[-int(seconds * 8000) * 2:], pcm


@pytest_twisted.inlineCallbacks
def test_baresip_hold_reaches_module_and_resume_restores_audio(gateway_factory,
                                                               baresip_factory):
    holder = {}
    gw = yield gateway_factory(media=media_for(holder))
    holder["gw"] = gw
    phone = yield alice_dials(gw, baresip_factory, "12125550190")
    yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield poll_until(reactor, lambda: mobile_states(gw) == ["active"], 10)
    yield defer_sleep(1.5)
    phone.command("hold")                          # re-INVITE a=sendonly
    yield poll_until(reactor, lambda: mobile_states(gw) == ["held"], 10)
    call = next(iter(gw.ctl.calls))
    assert call.mobile_held
    yield defer_sleep(1.5)
    phone.command("resume")                        # re-INVITE a=sendrecv
    yield poll_until(reactor, lambda: mobile_states(gw) == ["active"], 10)
    assert not call.mobile_held
    yield defer_sleep(3)
    phone.command("hangup")
    yield phone.wait_event(reactor, "CALL_CLOSED", timeout=10)
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 10)
    tail, _ = tail_of_recording(phone, 2.0)
    freq, seconds, rms = dominant_pcm(tail + tail)   # dominant_pcm reads the 2nd half
    assert seconds > 1 and rms > 300 and freq == 440, (freq, seconds, rms)
    rows = yield gw.cdrs.recent()
    assert rows[0]["end_side"] == "sip" and rows[0]["answer_time"] is not None


@pytest_twisted.inlineCallbacks
def test_call_waiting_holds_the_first_leg_by_reinvite(gateway_factory, baresip_factory):
    bob = baresip_factory("bob")
    carol = baresip_factory("carol")
    forward = (f"+12125550151>bob@127.0.0.1:{bob.sip_port}|"
               f"+12125550152>carol@127.0.0.1:{carol.sip_port}")
    holder = {}
    gw = yield gateway_factory(CallsConfig(lines=(LineCalls(
        incoming_forward=forward, call_waiting="1"),)), media=media_for(holder))
    holder["gw"] = gw
    yield gw.modems[0].set_call_waiting(True)
    first = gw.network.add_remote_phone("+12125550151", audio="tone:1400")
    second = gw.network.add_remote_phone("+12125550152", audio="tone:1000")
    number = gw.modems[0].sim.own_number
    first.dial(number)
    yield bob.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield poll_until(reactor, lambda: mobile_states(gw) == ["active"], 10)
    (call,) = gw.ctl.calls
    bob_leg = call.leg.sip_leg

    def reinvites():
        return bob.log_text().count("got re-INVITE")

    assert reinvites() == 0
    second.dial(number)
    yield carol.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield poll_until(reactor, lambda: mobile_states(gw) == ["active", "held"], 10)
    # bob got our re-INVITE (baresip logs it) and answered the hold: a=recvonly
    yield poll_until(reactor, lambda: reinvites() == 1, 10)
    yield poll_until(reactor, lambda: bob_leg.updates.local_hold == "sendonly", 10)
    assert b"a=sendonly" in bob_leg.local_sdp and b"a=recvonly" in bob_leg.remote_sdp
    assert call.switched_out and not bob.find_event("CALL_CLOSED")
    yield defer_sleep(3)
    second.hangup()
    yield carol.wait_event(reactor, "CALL_CLOSED", timeout=10)
    yield poll_until(reactor, lambda: mobile_states(gw) == ["active"], 10)
    yield poll_until(reactor, lambda: reinvites() == 2, 10)          # resume
    yield poll_until(reactor, lambda: bob_leg.updates.local_hold is None, 10)
    assert b"a=sendrecv" in bob_leg.local_sdp and b"a=recvonly" not in bob_leg.remote_sdp
    assert not call.switched_out and not bob.find_event("CALL_CLOSED")
    yield defer_sleep(3)
    figures = call.bridge.figures()       # the resumed leg's RTP, both ways
    assert figures["sent"] > 100 and figures["received"] > 100, figures
    back = bytes(first.heard)[-32000:]     # the last 2 s the first caller heard
    first.hangup()
    yield bob.wait_event(reactor, "CALL_CLOSED", timeout=10)
    # audio: carol heard the second caller; after the resume the first caller hears
    # bob's 440 Hz again (baresip 1.0 stops its own decode dump after being held,
    # so bob's side is checked through the gateway's RTP figures above)
    _, heard = tail_of_recording(carol, 0)
    freq, seconds, rms = dominant_pcm(heard)
    assert seconds > 1 and rms > 300 and freq == 1000, ("carol", freq, seconds, rms)
    freq, seconds, rms = dominant_pcm(back + back)
    assert seconds > 1 and rms > 300 and freq == 440, ("first caller", freq, seconds, rms)
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 10)
    rows = yield gw.cdrs.recent()
    assert sorted(r["caller_before"] for r in rows) == ["+12125550151", "+12125550152"]
    assert len({r["sip_call_id"] for r in rows}) == 2


@pytest_twisted.inlineCallbacks
def test_late_offer_over_udp_media_follows_the_ack(gateway_factory):
    """An INVITE without SDP to the gateway's own number (two-stage dialing, so it
    answers at once): the 200 carries the gateway's offer, our ACK the answer with
    our RTP port, and the dial tone arrives there -- media took the ACK's answer."""
    from twisted.internet.protocol import DatagramProtocol

    from goip_tw.sip.message import parse_message

    holder = {}
    gw = yield gateway_factory(media=media_for(holder), outgoing_auth="none")
    holder["gw"] = gw

    class Sip(DatagramProtocol):
        responses = []

        def datagramReceived(self, data, addr):
            msg = parse_message(data)
            if hasattr(msg, "status"):
                self.responses.append(msg)

    class Rtp(DatagramProtocol):
        packets = 0

        def datagramReceived(self, data, addr):
            Rtp.packets += 1

    sip = Sip()
    sip_port = reactor.listenUDP(0, sip, interface="127.0.0.1")
    rtp_port = reactor.listenUDP(0, Rtp(), interface="127.0.0.1")
    local, rtp = sip_port.getHost().port, rtp_port.getHost().port
    try:
        invite = (f"INVITE sip:goip-01@127.0.0.1:{gw.sip.port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKlate1;rport\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:carol@127.0.0.1>;tag=c1\r\n"
                  f"To: <sip:goip-01@127.0.0.1:{gw.sip.port}>\r\nCall-ID: late-offer-1\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:carol@127.0.0.1:{local}>\r\n"
                  "Content-Length: 0\r\n\r\n").encode()
        sip_port.write(invite, ("127.0.0.1", gw.sip.port))
        yield poll_until(reactor, lambda: any(r.status == 200 for r in sip.responses), 10)
        ok = next(r for r in sip.responses if r.status == 200)
        assert b"m=audio" in ok.body                    # the gateway's offer
        answer = (b"v=0\r\no=carol 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                  b"t=0 0\r\nm=audio %d RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
                  b"a=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n" % rtp)
        ack = (f"ACK sip:goip-01@127.0.0.1:{gw.sip.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKlate2;rport\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:carol@127.0.0.1>;tag=c1\r\n"
               f"To: {ok.headers.get('to')}\r\nCall-ID: late-offer-1\r\nCSeq: 1 ACK\r\n"
               f"Content-Type: application/sdp\r\nContent-Length: {len(answer)}\r\n\r\n"
               ).encode() + answer
        sip_port.write(ack, ("127.0.0.1", gw.sip.port))
        yield poll_until(reactor, lambda: Rtp.packets >= 10, 10)   # the dial tone
        bye = ack.replace(b"ACK sip", b"BYE sip", 1).replace(b"CSeq: 1 ACK", b"CSeq: 2 BYE") \
            .replace(b"late2", b"late3")
        bye = bye[:bye.index(b"Content-Type")] + b"Content-Length: 0\r\n\r\n"
        sip_port.write(bye, ("127.0.0.1", gw.sip.port))
        yield poll_until(reactor, lambda: not gw.ctl.calls and not gw.ctl.pending_cdrs, 10)
    finally:
        yield sip_port.stopListening()
        yield rtp_port.stopListening()
