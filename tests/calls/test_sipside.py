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
