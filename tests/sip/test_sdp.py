"""SDP model and RFC 3264 offer/answer."""

from __future__ import annotations

import pytest

from goip_tw.sip.sdp import (NoCommonCodec, SdpError, Session, answer_direction, hold,
                             make_answer, make_offer, resume)

OFFER = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
         b"c=IN IP4 192.0.2.10\r\nt=0 0\r\n"
         b"m=audio 49170 RTP/AVP 0 8 18 97 101\r\n"
         b"a=rtpmap:97 iLBC/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         b"a=fmtp:101 0-15\r\na=ptime:30\r\na=x-unknown:kept\r\n"
         b"m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n")


def test_parse_round_trip_keeps_unknown_attributes():
    s = Session.parse(OFFER)
    assert s.origin == ("alice", "2890844526", 2890844526, "192.0.2.10")
    audio = s.audio()
    assert [n for _, n, _ in audio.codecs()] == ["PCMU", "PCMA", "G729", "ILBC",
                                                "TELEPHONE-EVENT"]
    assert audio.ptime == 30 and audio.attr("x-unknown") == "kept"
    again = Session.parse(s.to_bytes())
    assert again == s


def test_answer_uses_our_codec_order_keeps_stream_count_and_dtmf_pt():
    s = Session.parse(OFFER)
    ans = make_answer(s, "127.0.0.1", 4000, ["G729", "PCMA", "PCMU"], ptime=20)
    assert len(ans.media) == 2 and ans.media[1].port == 0  # video refused (§6)
    audio = ans.media[0]
    assert audio.formats == ("18", "101")
    assert audio.ptime == 30  # the offerer asked for 30 ms
    assert audio.direction == "sendrecv"
    assert ("fmtp", "18 annexb=no") in audio.attributes
    assert b"a=rtpmap:101 telephone-event/8000" in ans.to_bytes()


def test_answer_no_common_codec_is_488_material():
    with pytest.raises(NoCommonCodec):
        make_answer(Session.parse(OFFER), "127.0.0.1", 4000, ["G722"])


def test_hold_and_resume_bump_version_and_answer_directions():
    offer = make_offer("127.0.0.1", 4000, ["PCMA", "PCMU", "G729"], ptime=20)
    assert offer.audio().formats == ("8", "0", "18", "101")
    held = hold(offer)
    assert held.audio().direction == "sendonly" and held.origin[2] == 2
    assert hold(offer, "inactive").audio().direction == "inactive"
    assert resume(held).audio().direction == "sendrecv" and resume(held).origin[2] == 3
    answer = make_answer(held, "127.0.0.1", 5000, ["PCMU"])
    assert answer.audio().direction == "recvonly"
    assert answer_direction("inactive") == "inactive"
    assert answer_direction("sendrecv", "sendonly") == "sendonly"


@pytest.mark.parametrize("bad", [
    b"v=0\r\ns=-\r\n",                                        # no origin
    b"v=0\r\no=a 1 x IN IP4 1.2.3.4\r\n",                     # bad version
    b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n",
    b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n",  # no c=
    b"garbage\r\n",
])
def test_bad_sdp_names_the_field(bad):
    with pytest.raises(SdpError) as err:
        Session.parse(bad)
    assert err.value.field
