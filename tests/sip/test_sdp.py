"""SDP model and RFC 3264 offer/answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goip_tw.media import codecs
from goip_tw.sip import sdp
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


# -- the single audio stream the media engine runs (goip_tw.media.service) ----------

AUDIO = (b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 5004 RTP/AVP 0 8 96 101\r\na=rtpmap:96 opus/48000/2\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n")
KEY = "1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0"


def test_parse_audio_and_negotiate_in_the_offerers_order():
    d = sdp.parse_audio(AUDIO)
    assert (d.address, d.port, d.payload_types) == ("127.0.0.1", 5004, (0, 8, 96, 101))
    assert d.telephone_event_pt() == 101
    assert [c.name for c in sdp.negotiate(d, [codecs.PCMA, codecs.PCMU])] == ["PCMU", "PCMA"]


@pytest.mark.parametrize("text, field", [
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\n", "m=audio"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n", "port"),
    (b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "c="),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP zz\r\n", "payload"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:abc\r\n", "ptime"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 128\r\n", "payload"),
    (b"v=0\r\nc=IN IP4\r\nm=audio 4000 RTP/AVP 0\r\n", "c="),
    (b"garbage", "m=audio"),
    # numbers Python reads but SDP does not, and values that would size our buffers
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:inf\r\n", "ptime"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:1e400\r\n", "ptime"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:nan\r\n", "ptime"),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio \u00b2 RTP/AVP 0\r\n".encode(), "port"),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP \u00b2\r\n".encode(), "payload"),
])
def test_parse_audio_errors_name_the_field(text, field):
    with pytest.raises(sdp.SdpError, match=field):
        sdp.parse_audio(text)


def test_parse_audio_hold_directions():
    held = sdp.parse_audio(AUDIO.replace(b"a=sendrecv", b"a=sendonly"))
    assert held.direction == "sendonly" and sdp.answer_direction("sendonly") == "recvonly"
    old_style = sdp.parse_audio(AUDIO.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))
    assert old_style.direction == "sendonly"  # RFC 2543 hold


def test_parse_audio_is_lenient_about_what_it_does_not_need():
    # no o= line, a stray non-SDP line, a video stream before the audio one, and the
    # audio's own c= line: the audio stream is still found
    text = (b"v=0\r\nnot sdp\r\nm=video 6000 RTP/AVP 31\r\n"
            b"m=audio 5000 RTP/SAVP 8\r\nc=IN IP6 ::1\r\na=crypto:" + KEY.encode() +
            b"\r\na=crypto:2 AES_256_CM_HMAC_SHA1_80 inline:QUJD\r\n")
    d = sdp.parse_audio(text)
    assert (d.address, d.port, d.profile) == ("::1", 5000, "RTP/SAVP")
    assert d.crypto == (KEY, "2 AES_256_CM_HMAC_SHA1_80 inline:QUJD")
    with pytest.raises(SdpError, match="line"):
        Session.parse(text)  # the full model stays strict


def test_negotiate_takes_the_offers_dynamic_payload_type():
    d = sdp.parse_audio(AUDIO.replace(b"0 8 96 101", b"97 101").replace(
        b"a=rtpmap:96 opus/48000/2", b"a=rtpmap:97 pcma/8000"))
    [c] = sdp.negotiate(d, codecs.available())
    assert (c.name, c.payload_type) == ("PCMA", 97)


def test_build_audio_bytes():
    # the exact bytes goip_tw.media.sdp.build produced before the merge
    assert sdp.build_audio("127.0.0.1", 4000, [codecs.PCMA, codecs.PCMU, codecs.G729]) == (
        b"v=0\r\no=goip-tw 1 1 IN IP4 127.0.0.1\r\ns=goip-tw\r\nc=IN IP4 127.0.0.1\r\n"
        b"t=0 0\r\nm=audio 4000 RTP/AVP 8 0 18 101\r\na=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=yes\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
        b"a=sendrecv\r\n")
    assert sdp.build_audio("::1", 4002, [codecs.PCMU], dtmf_pt=None, ptime=30,
                           direction="recvonly", crypto=KEY, session_id=4002, version=3,
                           cn=True) == (
        b"v=0\r\no=goip-tw 4002 3 IN IP6 ::1\r\ns=goip-tw\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
        b"m=audio 4002 RTP/SAVP 0 13\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:13 CN/8000\r\n"
        b"a=ptime:30\r\na=crypto:" + KEY.encode() + b"\r\na=recvonly\r\n")


def test_build_audio_round_trips_through_both_views():
    raw = sdp.build_audio("127.0.0.1", 4000, [codecs.PCMA], dtmf_pt=96, crypto=KEY, cn=True)
    s = Session.parse(raw)
    assert s.to_bytes() == raw
    audio = s.audio()
    assert audio.crypto == (KEY,) and audio.proto == "RTP/SAVP"
    assert [n for _, n, _ in audio.codecs()] == ["PCMA", "CN", "TELEPHONE-EVENT"]
    d = sdp.parse_audio(raw)
    assert d.payload_types == (8, 13, 96) and d.telephone_event_pt() == 96
    assert d.crypto == (KEY,) and d.profile == "RTP/SAVP"


def test_offer_and_answer_with_sdes_crypto():
    offer = make_offer("127.0.0.1", 4000, ["PCMU"], crypto=KEY)
    assert offer.audio().proto == "RTP/SAVP" and offer.audio().crypto == (KEY,)
    answer = make_answer(Session.parse(offer.to_bytes()), "127.0.0.1", 5000, ["PCMU"],
                         crypto=KEY.replace("QUJD", "WFla"))
    assert answer.audio().proto == "RTP/SAVP"
    assert answer.audio().crypto == (KEY.replace("QUJD", "WFla"),)
    # RFC 4568: an SRTP stream we hold no key for is refused, so nothing is left
    with pytest.raises(NoCommonCodec):
        make_answer(offer, "127.0.0.1", 5000, ["PCMU"])


def test_session_level_direction_applies_to_streams_without_one():
    # RFC 4566 §6: a=sendonly before the first m= line holds every stream
    held = AUDIO.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n").replace(b"a=sendrecv\r\n", b"")
    assert sdp.parse_audio(held).direction == "sendonly"
    assert sdp.offered_direction(held) == "sendonly"
    answer = make_answer(Session.parse(held), "127.0.0.1", 4000, ["PCMU"])
    assert answer.audio().direction == "recvonly"
    # the stream's own attribute wins
    own = held.replace(b"a=ptime:20", b"a=ptime:20\r\na=inactive")
    assert sdp.offered_direction(own) == "inactive"


@pytest.mark.parametrize("body, direction", [
    (AUDIO, "sendrecv"),
    (AUDIO.replace(b"a=sendrecv", b"a=recvonly"), "recvonly"),
    (AUDIO.replace(b"IN IP4 127.0.0.1\r\nt", b"IN IP4 0.0.0.0\r\nt"), "sendonly"),
    (b"", "sendrecv"),
    (b"m=audio x\r\n", "sendrecv"),  # unusable bodies never raise
    (b"\xff\xfe" * 40, "sendrecv"),
    # hold is still seen in an offer the media engine would refuse
    (AUDIO.replace(b"a=ptime:20", b"a=ptime:abc").replace(b"sendrecv", b"inactive"), "inactive"),
])
def test_offered_direction(body, direction):
    assert sdp.offered_direction(body) == direction


def test_odd_numbers_in_the_full_model_are_named_errors_or_ignored():
    base = "v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
    with pytest.raises(SdpError, match="origin"):
        Session.parse("v=0\r\no=a 1 \u00b2 IN IP4 1.2.3.4\r\n".encode())
    audio = Session.parse((base + "m=audio 4000 RTP/AVP 0 \u00b2\r\n"
                           "a=rtpmap:\u00b2 PCMA/\u00b2\r\na=ptime:inf\r\n").encode()).audio()
    assert audio.codecs() == [("0", "PCMU", 8000), ("\u00b2", "PCMA", 8000)]
    assert audio.ptime is None


def test_parse_audio_prefers_the_stream_in_use():
    two = AUDIO.replace(b"m=audio 5004", b"m=audio 0 RTP/SAVP 0\r\nm=audio 5004")
    d = sdp.parse_audio(two)
    assert (d.port, d.index, d.profile) == (5004, 1, "RTP/AVP")
    answer = Session.parse(sdp.build_audio("127.0.0.1", 4000, [codecs.PCMU], answer_to=d))
    assert [(m.kind, m.port, m.proto) for m in answer.media] == [
        ("audio", 0, "RTP/SAVP"), ("audio", 4000, "RTP/AVP")]
    only_refused = sdp.parse_audio(AUDIO.replace(b"m=audio 5004", b"m=audio 0"))
    assert only_refused.port == 0 and only_refused.index == 0


_LINES = st.sampled_from([
    "v=0", "o=a 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "c=IN IP6 ::", "t=0 0",
    "m=audio 4000 RTP/AVP 0 8 101", "m=video 0 RTP/AVP 31", "m=audio 4000 RTP/SAVP 8",
    "a=rtpmap:101 telephone-event/8000", "a=ptime:20", "a=sendonly", "a=inactive",
    "a=crypto:" + KEY, "b=AS:64"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_LINES, st.text(max_size=30)), max_size=12))
def test_any_input_gives_a_description_or_a_named_error(lines):
    body = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    for parse in (Session.parse, lambda b: Session.parse(b, strict=False), sdp.parse_audio):
        try:
            parse(body)
        except SdpError as e:
            assert e.field
    assert sdp.offered_direction(body) in sdp.DIRECTIONS
