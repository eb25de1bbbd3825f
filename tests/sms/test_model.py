"""Alphabets and splitting (TS 23.038 / 23.040) and routing policy, incl. property tests."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goip_tw.sms.model import (GSM7_BASIC, GSM7_EXTENSION, EncodeError, air_coding,
                               decode_data_coding, encode_data_coding, gsm7_decode_unpacked,
                               gsm7_encode_unpacked, gsm7_septets, split_text)
from goip_tw.sms.router import RouteError, Router


def test_gsm7_table_shape():
    assert len(GSM7_BASIC) == 128 and GSM7_BASIC[0x1B] == "\x1b"
    assert GSM7_BASIC[0x24] == "¤" and GSM7_BASIC[0x5F] == "§" and GSM7_BASIC[0x7F] == "à"
    assert GSM7_EXTENSION["€"] == 0x65


@pytest.mark.parametrize("text,parts,coding", [
    ("a" * 160, 1, "gsm7"), ("a" * 161, 2, "gsm7"), ("a" * 306, 2, "gsm7"), ("a" * 307, 3, "gsm7"),
    ("€" * 80, 1, "gsm7"), ("€" * 81, 2, "gsm7"), ("ж" * 70, 1, "ucs2"), ("ж" * 71, 2, "ucs2"),
    ("😀" * 35, 1, "ucs2"), ("😀" * 36, 2, "ucs2"),
])
def test_split_counts(text, parts, coding):
    assert air_coding(text) == coding
    assert len(split_text(text)) == parts


def test_split_never_breaks_escapes_or_surrogates():
    text = "a" * 152 + "€" + "b" * 10
    assert split_text(text)[0] == "a" * 152
    emoji = "x" * 66 + "😀" + "y" * 10
    assert split_text(emoji)[0] == "x" * 66


@given(st.text(alphabet=st.sampled_from(GSM7_BASIC.replace("\x1b", "") + "".join(GSM7_EXTENSION)),
               max_size=600))
def test_gsm7_roundtrip_and_split_limits(text):
    assert gsm7_decode_unpacked(gsm7_encode_unpacked(text)) == text
    parts = split_text(text) if text else [""]
    assert "".join(parts) == text
    limit = 160 if len(parts) == 1 else 153
    assert all(gsm7_septets(p) <= limit for p in parts)


@given(st.text(max_size=400).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)))
def test_any_text_splits_losslessly(text):
    if not text:
        return
    parts = split_text(text)
    assert "".join(parts) == text
    if air_coding(text) == "ucs2":
        limit = 70 if len(parts) == 1 else 67
        assert all(len(p.encode("utf-16-be")) // 2 <= limit for p in parts)


def test_data_codings():
    assert decode_data_coding("café".encode("latin-1"), 3) == "café"
    assert decode_data_coding("😀".encode("utf-16-be"), 8) == "😀"
    assert decode_data_coding(b"abc", 1) == "abc"
    assert decode_data_coding(b"\x1b\x65", 0) == "€"
    assert decode_data_coding(b"abc", 0xF0) == "abc"
    with pytest.raises(EncodeError):
        decode_data_coding(b"abc", 8)
    with pytest.raises(EncodeError):
        decode_data_coding(b"abc", 2)
    assert encode_data_coding("hello") == (0, b"hello")
    assert encode_data_coding("ж") == (8, "ж".encode("utf-16-be"))
    with pytest.raises(EncodeError):
        gsm7_encode_unpacked("ж")


def test_router_round_robin_prefix_and_strict():
    r = Router.from_settings("1[3-8]XXXXXXXXX:", strict=True, prefixes={2: ("00",), 3: ("00",)})
    assert r.route("13012345678").lines is None
    with pytest.raises(RouteError):
        r.route("4930123")
    picks = [r.pick([1, 2, 3]) for _ in range(4)]
    assert picks == [1, 2, 3, 1]
    assert r.pick([]) is None
    assert r.eligible((2, 3), tried=[2], available=[1, 2, 3]) == [3]
    r2 = Router.from_settings(prefixes={1: ("77",)}, match_caller=True)
    assert r2.route("5551234", sender="77100").lines == (1,)
    assert r2.route("5551234", line=4).lines == (4,)
    with pytest.raises(RouteError):
        r2.route("")


def test_crsm_ef_smss_and_part_encoding():
    from goip_tw.modem import pdu as mpdu
    from goip_tw.sms.lines import encode_part, parse_crsm_last_mr

    assert parse_crsm_last_mr('144,0,"2AFF"') == 0x2A
    assert parse_crsm_last_mr('106,130,""') is None
    assert parse_crsm_last_mr("garbage") is None
    hexpdu, length = encode_part("+4915550001", "teil zwei", (7, 3, 2), True)
    sub = mpdu.decode(hexpdu, incoming=False)
    assert sub.text == "teil zwei" and (sub.concat.ref, sub.concat.total, sub.concat.seq) == (7, 3, 2)
    assert sub.status_report_request and length == len(bytes.fromhex(hexpdu)) - 1
