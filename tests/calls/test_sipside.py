"""The SIP adapter: goip_tw.sip.ua events in, controller calls out.

Two-stage dialing with SIP INFO digits (F-427 "info" mode: the UA turns INFO
application/dtmf-relay into ua.Dtmf events), prefix-stripped routes, and the
outbound leg's failure codes.
"""

from goip_tw.calls.mediaside import NullMedia
from goip_tw.calls.sipside import SipSide
from goip_tw.sip import ua
from goip_tw.sip.routing import Route

from .fakes import Rig


class UaLeg:
    """Stands in for ua.InboundLeg / OutboundLeg: same attributes and commands."""

    def __init__(self, log, caller="alice", callee="8001", route=None, own=False):
        self.log = log
        self.caller, self.callee = caller, callee
        self.call_id = "c1@test"
        self.route = route
        self.own_number = own
        self.remote_sdp = b"v=0\r\n"
        self.listener = None

    def ringing(self):
        self.log.append(("sip", "180"))

    def early_media(self, sdp):
        self.log.append(("sip", "183", b"m=audio" in sdp))

    def answer(self, sdp):
        self.log.append(("sip", "200", b"m=audio" in sdp))

    def reject(self, code, reason=None):
        self.log.append(("sip", code))

    def hangup(self):
        self.log.append(("sip", "bye"))


class UaService:
    def __init__(self, log):
        self.log = log
        self.placed = []

    def place_call(self, target, *, caller="", line=None, local_sdp=b"",
                   caller_id_mode="from"):
        self.log.append(("sip", "invite", target, caller, caller_id_mode))
        leg = UaLeg(self.log, caller, target)
        self.placed.append(leg)
        return leg


def wired(**cfg):
    rig = Rig(**cfg)
    service = UaService(rig.log)
    side = SipSide(service, NullMedia())
    side.controller = rig.ctl
    rig.ctl.sip = side
    return rig, side, service


def test_two_stage_with_sip_info_digits():
    rig, side, _ = wired(dtmf_mode="info")
    leg = UaLeg(rig.log, route=Route(lines=(2,), number="", prefix="", entries=("main",)),
                own=True)
    side.incoming_call(leg)
    assert rig.take() == [("sip", "200", True), ("media", "tone", "leg", "dial")]
    for d in "10086#":
        leg.listener(ua.Dtmf(leg, d))
    log = rig.take()
    assert ("gsm", 2, "dial", "10086") in log
    leg.listener(ua.HungUp(leg, "remote", "BYE"))
    assert rig.cdrs.records[0].sip_call_id == "c1@test"


def test_stripped_route_number_is_dialled_raw_number_recorded():
    rig, side, _ = wired()
    leg = UaLeg(rig.log, callee="00213800138000",
                route=Route(lines=(2,), number="13800138000", prefix="002", entries=("l2",)))
    side.incoming_call(leg)
    assert rig.take()[0] == ("gsm", 2, "dial", "13800138000")
    leg.listener(ua.Failed(leg, 487, "Request Terminated"))
    cdr = rig.cdrs.records[0]
    assert (cdr.callee_before, cdr.callee_after) == ("00213800138000", "13800138000")


def test_outbound_leg_events():
    rig, side, service = wired(lines=[{"incoming_forward": "101", "cid_mode": "pai"}])
    from .fakes import FakeMobileCall

    rig.ctl.mobile_incoming(1, FakeMobileCall(rig.log, 1, "in"), "+12125550155")
    assert rig.take() == [("sip", "invite", "101", "+12125550155", "pai")]
    out = service.placed[0]
    out.listener(ua.Ringing(out))
    out.listener(ua.EarlyMedia(out, b""))
    out.listener(ua.Failed(out, 486, "Busy Here"))
    assert rig.take() == [("gsm", 1, "hangup", "in")]
    assert rig.cdrs.records[0].sip_code == 486
    rig.assert_clean()


def test_no_controller_yet_503():
    rig, side, _ = wired()
    side.controller = None
    leg = UaLeg(rig.log)
    side.incoming_call(leg)
    assert rig.take() == [("sip", 503)]


class SdpMedia(NullMedia):
    """NullMedia that records which SDP reached the media side."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def local_sdp(self, leg, offer):
        self.log.append(("media", "offer" if offer is None else "answer"))
        return super().local_sdp(leg, offer)

    def remote_sdp(self, leg, sdp):
        self.log.append(("media", "remote", sdp))
        return sdp != b"bad"


def wired_media(**cfg):
    rig = Rig(**cfg)
    service = UaService(rig.log)
    side = SipSide(service, SdpMedia(rig.log))
    side.controller = rig.ctl
    rig.ctl.sip = side
    return rig, side


def talking(rig, side, leg):
    side.incoming_call(leg)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    leg.listener(ua.Answered(leg, b""))
    rig.take()
    return mcall


def test_sip_hold_event_reaches_media_and_module():
    """A re-INVITE a=sendonly from the SIP side: media stops sending (remote_sdp) and
    the module holds the call (AT+CHLD=2); resuming retrieves it."""
    rig, side = wired_media()
    leg = UaLeg(rig.log, route=Route(lines=(1,), number="8001", prefix="", entries=("m",)))
    talking(rig, side, leg)
    leg.listener(ua.Hold(leg, held=True, sdp=b"v=0 hold"))
    assert rig.take() == [("media", "remote", b"v=0 hold"), ("gsm", 1, "chld", "2")]
    leg.listener(ua.MediaChanged(leg, sdp=b"v=0 moved"))
    assert rig.take() == [("media", "remote", b"v=0 moved")]
    leg.listener(ua.MediaChanged(leg, sdp=b"bad"))   # unusable: logged, call goes on
    assert rig.take() == [("media", "remote", b"bad")]
    leg.listener(ua.Hold(leg, held=False, sdp=b"v=0 resume"))
    assert rig.take() == [("media", "remote", b"v=0 resume"), ("gsm", 1, "chld", "2")]
    leg.listener(ua.HungUp(leg, "remote", "BYE"))
    rig.assert_clean()


def test_late_offer_answer_from_the_ack_goes_to_media():
    """INVITE without SDP: media makes an offer for the 200 and gets the ACK's answer."""
    rig, side = wired_media()
    leg = UaLeg(rig.log, route=Route(lines=(1,), number="8001", prefix="", entries=("m",)))
    leg.remote_sdp = b""
    side.incoming_call(leg)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    assert ("media", "offer") in rig.take()
    leg.listener(ua.Answered(leg, b"v=0 answer"))
    assert rig.take() == [("media", "remote", b"v=0 answer")]
    leg.listener(ua.HungUp(leg, "remote", "BYE"))
    rig.assert_clean()


def test_offer_in_invite_ack_without_sdp_leaves_media_alone():
    rig, side = wired_media()
    leg = UaLeg(rig.log, route=Route(lines=(1,), number="8001", prefix="", entries=("m",)))
    side.incoming_call(leg)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    assert ("media", "answer") in rig.take()
    leg.listener(ua.Answered(leg, b""))
    assert rig.take() == []
    leg.listener(ua.HungUp(leg, "remote", "BYE"))


def test_our_hold_and_resume_retarget_media():
    from twisted.internet import defer

    rig, side = wired_media()
    leg = UaLeg(rig.log, route=Route(lines=(1,), number="8001", prefix="", entries=("m",)))
    sent = []

    def reinvite(what):
        def send(*args):
            sent.append(what)
            leg.remote_sdp = b"v=0 " + what.encode()
            return defer.succeed(200 if what != "refused" else 488)
        return send

    leg.hold, leg.resume = reinvite("recvonly"), reinvite("sendrecv")
    talking(rig, side, leg)
    results = []
    side_leg = rig.ctl.call_on_line(1).leg
    side_leg.hold().addCallback(results.append)
    side_leg.resume().addCallback(results.append)
    assert results == [200, 200] and sent == ["recvonly", "sendrecv"]
    assert rig.take() == [("media", "remote", b"v=0 recvonly"),
                          ("media", "remote", b"v=0 sendrecv")]
    leg.hold = reinvite("refused")
    side_leg.hold().addCallback(results.append)
    assert results[-1] == 488 and rig.take() == []   # refused: session unchanged
    leg.listener(ua.HungUp(leg, "remote", "BYE"))
