"""F-427 per line through the real MediaService on loopback UDP.

Two mobile calls forwarded to SIP by the real controller and SIP adapter: line 1 is
configured ``dtmf_mode = "inband"``, line 2 ``"rfc4733"`` (media.dtmf_mode is
rfc4733 for both).  The far end's RTP socket sees what each line sends when the
mobile caller presses 5: line 1 offers no telephone-event and the key reaches the
far end only as a tone in the audio; line 2 sends RFC 4733 telephone-event packets.
"""

import attrs
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import DatagramProtocol

from goip_tw.calls.sipside import SipSide
from goip_tw.config.sections.media import MediaConfig
from goip_tw.media import codecs
from goip_tw.media.dtmf import DtmfDetector, decode_event, generate
from goip_tw.media.interfaces import FrameQueue
from goip_tw.media.rtp import RtpPacket
from goip_tw.media.service import MediaService
from goip_tw.sip import ua
from tests.calls.fakes import FakeMobileCall, Rig
from tests.calls.test_sipside import UaService
from tests.peers.peerutil import free_port


class FarEnd(DatagramProtocol):
    """The SIP peer's RTP socket: keeps every packet."""

    def __init__(self):
        self.packets = []

    def datagramReceived(self, data, addr):
        self.packets.append(RtpPacket.parse(data))

    def events(self):
        return [decode_event(p.payload) for p in self.packets if p.payload_type == 101]

    def heard(self):
        """Digits a DTMF detector finds in the PCMU audio, in sequence order."""
        dec = codecs.PCMU.new_decoder()
        digits = []
        det = DtmfDetector(lambda ev: digits.append(ev.digit))
        for p in sorted((p for p in self.packets if p.payload_type == 0),
                        key=lambda p: p.sequence):
            det.feed(dec.decode(p.payload))
        return digits


class RecordingUa(UaService):
    """Keeps the SDP offer of each call placed."""

    def place_call(self, target, *, caller="", line=None, local_sdp=b"", caller_id_mode="from"):
        leg = super().place_call(target, caller=caller, line=line, local_sdp=local_sdp,
                                 caller_id_mode=caller_id_mode)
        leg.offer = local_sdp
        return leg


def answer_sdp(port):
    return ("v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
            "a=sendrecv\r\n").encode()


@defer.inlineCallbacks
def until(pred, seconds=3.0, step=0.02):
    for _ in range(int(seconds / step)):
        if pred():
            return
        yield task.deferLater(reactor, step, lambda: None)
    raise AssertionError("not reached in time")


@pytest_twisted.inlineCallbacks
def test_inband_line_sends_tones_rfc4733_line_sends_telephone_events():
    rig = Rig(dtmf_mode="rfc4733", lines=[{"incoming_forward": "101", "dtmf_mode": "inband"},
                                          {"incoming_forward": "102", "dtmf_mode": "rfc4733"}])
    voice = {1: FrameQueue(max_frames=100), 2: FrameQueue(max_frames=100)}
    low = free_port(span=40)
    cfg = attrs.evolve(MediaConfig(), rtp_port_min=low, rtp_port_max=low + 39,
                       codecs=("PCMU",), dtmf_mode="rfc4733")
    media = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1",
                         voice_port_of=voice.get)
    media.startService()
    service = RecordingUa(rig.log)
    side = SipSide(service, media)
    side.controller = rig.ctl
    rig.ctl.sip, rig.ctl.media = side, media
    far = {n: FarEnd() for n in (1, 2)}
    udp = {n: reactor.listenUDP(0, far[n], interface="127.0.0.1") for n in (1, 2)}
    mcalls = {}
    try:
        for n in (1, 2):
            mcalls[n] = FakeMobileCall(rig.log, n, f"in{n}")
            rig.ctl.mobile_incoming(n, mcalls[n], "01088886666")
        legs = {n: service.placed[n - 1] for n in (1, 2)}
        assert b"telephone-event" not in legs[1].offer
        assert b"a=rtpmap:101 telephone-event/8000" in legs[2].offer
        for n in (1, 2):
            legs[n].listener(ua.Answered(legs[n], answer_sdp(udp[n].getHost().port)))
        assert ("gsm", 1, "answer", "in1") in rig.log and ("gsm", 2, "answer", "in2") in rig.log

        # the mobile caller presses 5 on both calls: the network puts the tone into
        # the module's audio and the module reports the key
        for n in (1, 2):
            voice[n].push(generate("5", 100) + bytes(2 * 8 * 200))
            mcalls[n].listener.mobile_dtmf(mcalls[n], "5")
        yield until(lambda: far[1].heard() and any(e[1] for e in far[2].events()))
        yield task.deferLater(reactor, 0.2, lambda: None)  # let the rest arrive

        assert far[1].heard() == ["5"]
        assert far[1].events() == []  # no telephone-event on the in-band line
        events = far[2].events()
        assert {e[0] for e in events} == {"5"} and events[-1][1] is True  # end packet
        assert not [p for p in far[2].packets if p.payload_type not in (0, 101)]
    finally:
        rig.ctl.hangup_all()
        for port in udp.values():
            yield port.stopListening()
        yield media.stopService()
    assert not media.ports.in_use and len(media.ticker) == 0


@pytest_twisted.inlineCallbacks
def test_set_dtmf_mode_per_leg_bad_mode_falls_back_and_release_forgets():
    low = free_port(span=20)
    cfg = attrs.evolve(MediaConfig(), rtp_port_min=low, rtp_port_max=low + 19,
                       codecs=("PCMU",), dtmf_mode="info")

    class Leg:
        call_id = "c9"
        listener = None

    media = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1")
    a, b = Leg(), Leg()
    media.set_dtmf_mode(a, "rfc4733")
    media.set_dtmf_mode(b, "whistle")  # logged with the value, global mode kept
    assert media.dtmf_mode(a) == "rfc4733" and media.dtmf_mode(b) == "info"
    assert media.dtmf_mode() == "info"
    try:
        assert b"telephone-event" in media.local_sdp(a, None)
        assert b"telephone-event" not in media.local_sdp(b, None)
    finally:
        media.release(a)
        media.release(b)
        yield task.deferLater(reactor, 0, lambda: None)  # the UDP ports finish closing
    assert media.dtmf_mode(a) == "info" and not media.ports.in_use
