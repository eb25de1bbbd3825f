"""PDU codec: worked examples (3GPP TS 23.038/23.040 layouts, hand-assembled) and
hypothesis round trips."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock

from goip_tw.modem import gsm7, pdu
from goip_tw.modem.pdu import Concat, Deliver, PduError, StatusReport

UTC = timezone.utc

# SMS-DELIVER: SMSC +12345678901, OA +18005551212, SCTS 2011-01-01 12:34:56 +00,
# "hellohello" packed per TS 23.038 §6.1.2.1.1 (the classic 10-character example).
DELIVER_HELLO = "07912143658709F1040B918100551512F20000111010214365000AE8329BFD4697D9EC37"
# SMS-SUBMIT: no SMSC (00), MR 0, DA +46708251358, VP relative AA (4 days), "hellohello".
SUBMIT_HELLO = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


def test_deliver_worked_example():
    d = pdu.decode(DELIVER_HELLO)
    assert d == Deliver(
        smsc="+12345678901", sender="+18005551212", text="hellohello",
        timestamp=datetime(2011, 1, 1, 12, 34, 56, tzinfo=UTC), encoding="gsm7")


def test_submit_worked_example_both_ways():
    s = pdu.decode(SUBMIT_HELLO, incoming=False)
    assert s.recipient == "+46708251358"
    assert s.text == "hellohello"
    assert s.validity == 4 * 24 * 60
    assert pdu.encode_submit("+46708251358", "hellohello", validity_minutes=4 * 1440) == [
        (SUBMIT_HELLO, 23)]


def test_timezone_quarter_hours_and_sign():
    # +05:45 (Nepal) = 23 quarters -> semi-octets "32"; -03:30 = 14 quarters, sign bit.
    for offset, octet in ((timedelta(hours=5, minutes=45), "32"),
                          (-timedelta(hours=3, minutes=30), "49")):
        ts = datetime(2024, 2, 29, 23, 59, 58, tzinfo=timezone(offset))
        hexpdu, _ = pdu.encode_deliver("+1", "x", ts)[0]
        assert hexpdu[26:28] == octet
        assert pdu.decode(hexpdu).timestamp == ts
        assert pdu.decode(hexpdu).timestamp.utcoffset() == offset


def test_alphanumeric_sender():
    ts = datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)
    hexpdu, _ = pdu.encode_deliver("Vodafone", "Hi", ts)[0]
    # 8 septets = 56 bits = 14 semi-octets, TOA D0 (TON 5 alphanumeric)
    assert hexpdu[4:8] == "0ED0"
    assert pdu.decode(hexpdu).sender == "Vodafone"
    hexpdu, _ = pdu.encode_deliver("Bank", "Hi", ts)[0]
    assert pdu.decode(hexpdu).sender == "Bank"
    with pytest.raises(PduError, match="sender"):
        pdu.encode_deliver("ThisIsTooLongName", "x", ts)


def test_extension_table_counts_double_and_is_not_split():
    text = "a" * 152 + "€" + "b" * 7  # 161 septets; escape would straddle septets 153/154
    parts = pdu.encode_submit("+123", text, concat_ref=7)
    decoded = [pdu.decode(p, incoming=False) for p, _ in parts]
    assert [d.text for d in decoded] == ["a" * 152, "€" + "b" * 7]
    assert [d.concat for d in decoded] == [Concat(7, 2, 1), Concat(7, 2, 2)]
    assert gsm7.septet_length("€[]") == 6


def test_split_sizes_153_and_67():
    assert len(pdu.encode_submit("+1", "x" * 160)) == 1
    parts = pdu.encode_submit("+1", "x" * 161, concat_ref=1)
    texts = [pdu.decode(p, incoming=False).text for p, _ in parts]
    assert [len(t) for t in texts] == [153, 8]
    assert len(pdu.encode_submit("+1", "я" * 70)) == 1
    parts = pdu.encode_submit("+1", "я" * 71, concat_ref=1)
    assert [len(pdu.decode(p, incoming=False).text) for p, _ in parts] == [67, 4]


def test_surrogate_pairs_not_split():
    text = "x" + "😀" * 40  # 81 UTF-16 units
    parts = pdu.encode_submit("+1", text, concat_ref=300)
    decoded = [pdu.decode(p, incoming=False) for p, _ in parts]
    assert all(d.concat.ref_bits == 16 and d.concat.ref == 300 for d in decoded)
    assert "".join(d.text for d in decoded) == text
    assert all("\ufffd" not in d.text for d in decoded)


def test_tpdu_length_excludes_smsc():
    hexpdu, n = pdu.encode_submit("+1", "hi", smsc="+4915")[0]
    assert len(bytes.fromhex(hexpdu)) == n + 1 + bytes.fromhex(hexpdu)[0]


def test_status_report_round_trip():
    scts = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=1)))
    dt = scts + timedelta(seconds=30)
    hexpdu, n = pdu.encode_status_report(42, "+4917012345", scts, dt, 0, smsc="+491")
    sr = pdu.decode(hexpdu)
    assert sr == StatusReport("+491", 42, "+4917012345", scts, dt, 0)
    assert sr.delivered and sr.final
    sr2 = pdu.decode(pdu.encode_status_report(1, "+1", scts, dt, 0x30)[0])
    assert not sr2.delivered and not sr2.final


def test_eight_bit_data():
    parts = pdu.encode_submit("+1", bytes(range(200)), concat_ref=9)
    decoded = [pdu.decode(p, incoming=False) for p, _ in parts]
    assert decoded[0].encoding == "8bit"
    assert b"".join(d.data for d in decoded) == bytes(range(200))


@pytest.mark.parametrize("bad, match", [
    ("", "SMSC length"),
    ("zz", "non-hex"),
    ("0", "odd"),
    ("00", "first octet"),
    ("0004", "TP-OA length"),
    ("00040B91", "TP-OA"),
    (DELIVER_HELLO[:-4], "TP-UD"),
    ("0003", "TP-MTI 3"),
    (DELIVER_HELLO.replace("11101021436500", "11121021436500"), "TP-SCTS"),  # month 21
    (DELIVER_HELLO.replace("0000111010", "0020111010"), "compressed"),
    ("0004" + "0B918100551512F2" + "0008" + "11101021436500" + "03" + "004100", "odd"),
    ("0004" + "0B918100551512F2" + "0000" + "11101021436500" + "A1" + "00" * 141, "160"),
])
def test_malformed_pdus_give_pduerror(bad, match):
    with pytest.raises(PduError, match=match):
        pdu.decode(bad)


def test_udhi_header_longer_than_data():
    bad = "0044" + "0B918100551512F2" + "0000" + "11101021436500" + "02" + "0500"
    with pytest.raises(PduError, match="header"):
        pdu.decode(bad)


def test_submit_arguments_validated():
    with pytest.raises(PduError, match="recipient"):
        pdu.encode_submit("12;AT+CFUN=0", "x")
    with pytest.raises(PduError, match="recipient"):
        pdu.encode_submit("Alpha", "x")
    with pytest.raises(PduError, match="GSM 7-bit"):
        pdu.encode_submit("+1", "ж", encoding="gsm7")
    with pytest.raises(PduError, match="lone surrogate"):
        pdu.encode_submit("+1", "\ud800")


def test_validity_period_table():
    assert pdu.validity_to_minutes(0) == 5
    assert pdu.validity_to_minutes(143) == 720
    assert pdu.validity_to_minutes(167) == 1440
    assert pdu.validity_to_minutes(168) == 2 * 1440
    assert pdu.validity_to_minutes(255) == 63 * 7 * 1440
    for vp in range(256):
        assert pdu.minutes_to_validity(pdu.validity_to_minutes(vp)) == vp


# --------------------------------------------------------------------------- properties

gsm_text = st.text(alphabet=st.sampled_from(
    [c for c in gsm7.BASIC if c != "\x1b"] + list(gsm7.EXTENSION.values())), max_size=400)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
numbers = st.from_regex(r"\+?[0-9*#]{1,20}", fullmatch=True)
zones = st.integers(-79, 79).map(lambda q: timezone(timedelta(minutes=15 * q)))
stamps = st.builds(lambda dt, tz: dt.replace(tzinfo=tz),
                   st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
                       lambda d: d.replace(microsecond=0)), zones)


def _reassemble(msgs):
    clock = Clock()
    r = pdu.Reassembler(clock, 60)
    out = [m for m in (r.add(m) for m in msgs) if m is not None]
    assert r.pending() == 0 and not clock.getDelayedCalls()
    return out


@settings(max_examples=150, deadline=None)
@given(numbers, st.one_of(gsm_text, any_text), st.integers(0, 255), st.booleans(),
       st.one_of(st.none(), st.integers(1, 500000)), st.one_of(st.none(), st.integers(0, 65535)))
def test_submit_round_trip(number, text, mr, srr, vmin, ref):
    parts = pdu.encode_submit(number, text, message_ref=mr, status_report=srr,
                              validity_minutes=vmin, concat_ref=ref)
    decoded = [pdu.decode(p, incoming=False) for p, _ in parts]
    for (hexpdu, n), d in zip(parts, decoded):
        assert n == len(bytes.fromhex(hexpdu)) - 1
        assert d.recipient == number and d.status_report_request == srr
        assert d.validity == (None if vmin is None else
                              pdu.validity_to_minutes(pdu.minutes_to_validity(vmin)))
    [whole] = _reassemble(decoded)
    assert whole.text == text
    assert whole.encoding == pdu.choose_encoding(text)


@settings(max_examples=150, deadline=None)
@given(st.one_of(numbers, st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ", min_size=1, max_size=11).filter(lambda s: not s.isdigit())),
       st.one_of(gsm_text, any_text), stamps, st.integers(0, 255))
def test_deliver_round_trip(sender, text, ts, ref):
    parts = pdu.encode_deliver(sender, text, ts, smsc="+4412345", concat_ref=ref)
    decoded = [pdu.decode(p) for p, _ in parts]
    assert all(d.sender == sender and d.timestamp == ts and d.smsc == "+4412345"
               for d in decoded)
    [whole] = _reassemble(decoded)
    assert whole.text == text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_escapes_as_other_exception(raw):
    for incoming in (True, False):
        for smsc in (True, False):
            try:
                pdu.decode(raw.hex(), incoming=incoming, smsc_included=smsc)
            except PduError:
                pass


# --------------------------------------------------------------------------- reassembly

def _part(seq, total=3, ref=5, sender="+1"):
    return Deliver(None, sender, f"p{seq}", datetime(2020, 1, 1, tzinfo=UTC),
                   concat=Concat(ref, total, seq))


def test_reassembler_out_of_order_and_duplicates():
    clock = Clock()
    r = pdu.Reassembler(clock, 30)
    assert r.add(_part(3)) is None
    assert r.add(_part(1)) is None
    assert r.add(_part(1)) is None  # duplicate dropped
    assert r.add(_part(1, sender="+2")) is None  # other sender, other key
    whole = r.add(_part(2))
    assert whole.text == "p1p2p3" and whole.concat is None
    assert r.pending() == 1
    r.flush()
    assert not clock.getDelayedCalls()


def test_reassembler_timeout_yields_partial():
    clock = Clock()
    got = []
    r = pdu.Reassembler(clock, 30, on_timeout=lambda m, missing: got.append((m.text, missing)))
    r.add(_part(1))
    r.add(_part(3))
    clock.advance(29)
    assert got == []
    clock.advance(1)
    assert got == [("p1p3", (2,))]
    assert r.pending() == 0 and not clock.getDelayedCalls()
    # a late part starts a fresh collection rather than crashing
    assert r.add(_part(2)) is None
    r.flush()
    assert got[-1] == ("p2", (1, 3))


def test_encode_submit_part_matches_whole_split():
    text = "Grüße " * 40
    parts = pdu.encode_submit("+4912345", text, concat_ref=77, status_report=True)
    decoded = [pdu.decode(h, incoming=False) for h, _ in parts]
    for i, d in enumerate(decoded):
        one = pdu.encode_submit_part("+4912345", d.text, d.concat, status_report=True,
                                     message_ref=i)
        assert one == parts[i]
    with pytest.raises(PduError, match="exceed"):
        pdu.encode_submit_part("+1", "x" * 160, Concat(1, 2, 1))
