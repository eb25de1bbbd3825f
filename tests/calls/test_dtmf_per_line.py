"""F-427 per line: ``[[calls.lines]] dtmf_mode`` overrides media.dtmf_mode for the
calls on that line (empty = the global mode).  Fakes and a Clock; the real media
engine's side is in tests/media/test_dtmf_per_line.py."""

import pytest

from goip_tw.calls.sipside import SipSide
from goip_tw.config.sections.calls import LineCalls

from .fakes import FakeLeg, FakeMedia, Rig
from .test_incoming import ring
from .test_outgoing import offer
from .test_sipside import UaService

#: line 1 in-band, line 2 SIP INFO, line 3 no override (global), line 4 copies line 1
LINES = [{"incoming_forward": "101", "dtmf_mode": "inband"},
         {"incoming_forward": "101", "dtmf_mode": "info"},
         {"incoming_forward": "101"}]


class ModeMedia(FakeMedia):
    """FakeMedia plus the media engine's per-leg mode and its RFC 4733 sender."""

    def __init__(self, log):
        super().__init__(log)
        self.modes = {}

    def set_dtmf_mode(self, leg, mode):
        self.modes[leg] = mode

    def send_dtmf(self, leg, digit, duration_ms=100):
        self.log.append(("media", "rfc4733", digit))
        return True


def rig_with(global_mode="rfc4733"):
    rig = Rig(dtmf_mode=global_mode, lines=LINES)
    rig.media = rig.ctl.media = ModeMedia(rig.log)
    return rig


def test_the_line_setting_wins_and_empty_means_global():
    rig = rig_with("rfc4733")
    assert [rig.ctl.dtmf_mode_of(n) for n in (1, 2, 3, 4)] == [
        "inband", "info", "rfc4733", "inband"]
    rig = rig_with("info")
    assert rig.ctl.dtmf_mode_of(3) == "info"
    assert LineCalls().dtmf_mode == ""


@pytest.mark.parametrize("line,expected", [
    (1, []),                                # in-band: the tone is already in the audio
    (2, [("sip", "info", "7")]),            # SIP INFO
    (3, [("media", "rfc4733", "7")]),       # no override: media.dtmf_mode = rfc4733
])
def test_mobile_dtmf_goes_out_in_the_lines_mode(line, expected):
    rig = rig_with("rfc4733")
    mcall = ring(rig, line=line)
    leg = rig.sip.legs[0]
    leg.listener.leg_answered(leg)
    rig.take()
    mcall.listener.mobile_dtmf(mcall, "7")
    assert rig.take() == expected
    rig.ctl.hangup_all()


@pytest.mark.parametrize("line,detector", [(1, True), (2, False), (3, False)])
def test_two_stage_listens_in_band_only_on_inband_lines(line, detector):
    rig = rig_with("rfc4733")
    rig.config = rig.config.__class__(lines=tuple(
        LineCalls(**{**kw, "incoming_forward": ""}) for kw in LINES))
    call, leg = offer(rig, callee="8001", own_number=True, lines=(line,))
    assert call.line == line
    assert ("leg" in rig.media.detectors) is detector
    assert rig.media.modes[leg] == ["inband", "info", "rfc4733"][line - 1]
    rig.ctl.hangup_all()


def test_voip_to_mobile_leg_gets_its_mode_before_any_sdp():
    rig = rig_with("rfc4733")
    seen = []

    class Leg(FakeLeg):
        def answer(self):
            seen.append(rig.media.modes.get(self))  # what the SDP answer is built with
            super().answer()

    leg = Leg(rig.log)
    from goip_tw.calls.interfaces import SipOffer
    rig.ctl.offer(leg, SipOffer("101", "8001", leg.call_id, own_number=True, lines=(2,)))
    assert seen == ["info"]
    rig.ctl.hangup_all()


def test_mobile_to_voip_offer_is_built_after_the_mode_is_set():
    rig = rig_with("rfc4733")
    built = []

    class Media(ModeMedia):
        def local_sdp(self, leg, offer):
            built.append(self.modes.get(leg))
            return b"v=0\r\n"

        def remote_sdp(self, leg, sdp):
            return True

        def release(self, leg):
            pass

    rig.media = rig.ctl.media = Media(rig.log)
    side = SipSide(UaService(rig.log), rig.media)
    side.controller = rig.ctl
    rig.ctl.sip = side
    for line in (1, 2, 3):
        ring(rig, line=line)
    assert built == ["inband", "info", "rfc4733"]
    rig.ctl.hangup_all()


def test_a_bad_mode_is_refused_by_the_config_with_the_field_named():
    from goip_tw.config import schema
    from goip_tw.config.sections.calls import CallsConfig

    errors = []
    schema.build_section(CallsConfig, {"lines": [{"dtmf_mode": "whistle"}]}, "calls",
                         "goip.toml", errors)
    assert errors and "dtmf_mode" in str(errors[0]) and "whistle" in str(errors[0])
    errors = []
    cfg = schema.build_section(CallsConfig, {"lines": [{"dtmf_mode": "inband"}, {}]},
                               "calls", "goip.toml", errors)
    assert errors == [] and [ln.dtmf_mode for ln in cfg.lines] == ["inband", ""]
