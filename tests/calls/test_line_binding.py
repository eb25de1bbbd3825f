"""Appendix D (F-1603): binding agents 101..108 to the lines of a GoIP-8.

Both outgoing schemes and the incoming one, with the SIP layer's real prefix
router (goip_tw.sip.routing, F-411/F-412) and "auto-configure other lines".
"""

from goip_tw.calls.interfaces import SipOffer
from goip_tw.config.sections.voip import SipAccount, VoipConfig
from goip_tw.sip.routing import PrefixRouter

from .fakes import FakeLeg, FakeMobileCall, Rig


def rig_with(voip, **cfg):
    router = PrefixRouter.from_config(voip, 8)
    return Rig(line_count=8, router=router.route, **cfg)


def call(rig, caller, callee):
    leg = FakeLeg(rig.log)
    rig.ctl.offer(leg, SipOffer(caller, callee, leg.call_id))
    return rig.take()


def test_scheme1_caller_prefix():
    """Line 1's account has prefix 101; auto-configure gives line n prefix 100+n, so
    extension 10n (or numbers starting with it) goes out only on line n."""
    voip = VoipConfig(mode="per_line", auto_configure_lines=True, prefix_match="caller",
                      lines=(SipAccount(auth_id="goip-01", phone_number="101",
                                        prefixes="101"),))
    rig = rig_with(voip)
    assert call(rig, "101", "13012345678")[0] == ("gsm", 1, "dial", "13012345678")
    assert call(rig, "105", "13012345678")[0] == ("gsm", 5, "dial", "13012345678")
    assert call(rig, "1081", "13012345678")[0] == ("gsm", 8, "dial", "13012345678")
    assert call(rig, "109", "13012345678") == [("sip", 603)]    # no line's prefix
    assert call(rig, "101", "139") == [("sip", 503)]             # line 1 busy (F-424)
    rig.ctl.hangup_all()


def test_scheme2_callee_prefix_with_strip():
    """Line n takes callees starting 00n; strip-prefix removes it before dialling."""
    voip = VoipConfig(mode="per_line", auto_configure_lines=True, prefix_match="callee",
                      strip_prefix=True,
                      lines=(SipAccount(auth_id="goip-01", prefixes="001"),))
    rig = rig_with(voip)
    assert call(rig, "101", "00113012345678")[0] == ("gsm", 1, "dial", "13012345678")
    assert call(rig, "107", "00313012345678")[0] == ("gsm", 3, "dial", "13012345678")
    assert call(rig, "101", "13012345678") == [("sip", 603)]
    rig.ctl.hangup_all()
    first = [c for c in rig.cdrs.records if c.line == 1][0]
    assert (first.callee_before, first.callee_after) == ("00113012345678", "13012345678")


def test_incoming_per_line_forward_numbers():
    """Incoming calls go to each line's own forward number (not auto-incremented)."""
    rig = Rig(line_count=8, lines=[{"incoming_forward": str(100 + n)} for n in range(1, 9)])
    for n in (1, 4, 8):
        rig.ctl.mobile_incoming(n, FakeMobileCall(rig.log, n, f"in{n}"), "13900000000")
    assert [e[2] for e in rig.take()] == ["101", "104", "108"]
    rig.ctl.hangup_all()
