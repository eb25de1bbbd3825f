"""SMS PDU codec: SMS-SUBMIT, SMS-DELIVER, SMS-STATUS-REPORT (3GPP TS 23.040 §9.2).

Pure Python, no I/O.  The hex strings are what AT+CMGS / +CMGL / +CMT / +CDS carry in
PDU mode (3GPP TS 27.005 §3): an SMSC address (TS 24.011 §8.2.5.1: length in octets,
0 = "use the SIM's") followed by the TPDU.  ``decode`` raises only :class:`PduError`
with a message naming the field that is wrong.

Coverage: GSM 7-bit default alphabet with the extension table, UCS2 as UTF-16BE
(characters outside the BMP as surrogate pairs), 8-bit data; user data headers with
8- and 16-bit concatenation (TS 23.040 §9.2.3.24.1/.8); alphanumeric addresses
(TON 5, GSM 7-bit packed, TS 23.040 §9.1.2.5); timestamps with a quarter-hour time
zone and sign bit (§9.2.3.11); relative validity period (§9.2.3.12.1).
"""

from __future__ import annotations

import itertools
import random
import re
from datetime import datetime, timedelta, timezone

import attrs

from goip_tw.modem import gsm7

__all__ = [
    "PduError", "Concat", "Deliver", "Submit", "StatusReport", "decode",
    "encode_submit", "encode_submit_part", "encode_deliver", "encode_status_report", "Reassembler",
    "choose_encoding", "count_parts", "validity_to_minutes", "minutes_to_validity",
]


class PduError(ValueError):
    """A PDU (or an argument to an encoder) is malformed; the message names the field."""


# --------------------------------------------------------------------------- values

@attrs.frozen
class Concat:
    """Concatenated-SMS information element (TS 23.040 §9.2.3.24.1 / .8)."""
    ref: int
    total: int
    seq: int
    ref_bits: int = 8


@attrs.frozen
class Deliver:
    smsc: str | None
    sender: str
    text: str
    timestamp: datetime
    encoding: str = "gsm7"
    data: bytes | None = None
    concat: Concat | None = None
    status_report_indication: bool = False
    message_class: int | None = None


@attrs.frozen
class Submit:
    smsc: str | None
    recipient: str
    text: str
    encoding: str = "gsm7"
    data: bytes | None = None
    concat: Concat | None = None
    message_ref: int = 0
    status_report_request: bool = False
    validity: int | None = None  # minutes, relative format only
    message_class: int | None = None


@attrs.frozen
class StatusReport:
    smsc: str | None
    message_ref: int
    recipient: str
    scts: datetime
    discharge_time: datetime
    status: int

    @property
    def delivered(self) -> bool:
        """TP-ST 0x00-0x1F: short message transaction completed (§9.2.3.15)."""
        return self.status < 0x20

    @property
    def final(self) -> bool:
        """False only for 0x20-0x3F, "temporary error, SC still trying"."""
        return not (0x20 <= self.status < 0x40)


# --------------------------------------------------------------------------- reading

class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PduError(
                f"PDU truncated in {field}: need {n} octet(s) at offset {self.pos}, "
                f"have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self, field: str) -> int:
        return self.take(1, field)[0]

    def rest(self) -> bytes:
        return self.data[self.pos:]


_BCD_DIGITS = "0123456789*#abc"
_NUMBER_RE = re.compile(r"\+?[0-9*#]{1,20}\Z")


def _bcd_decode(raw: bytes, ndigits: int, field: str) -> str:
    out = []
    for octet in raw:
        for nibble in (octet & 0x0F, octet >> 4):
            if len(out) == ndigits:
                break
            if nibble == 0x0F:
                raise PduError(f"{field}: filler nibble inside the number")
            out.append(_BCD_DIGITS[nibble])
    return "".join(out)


def _bcd_encode(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    out = bytearray()
    for i in range(0, len(digits), 2):
        lo, hi = digits[i], digits[i + 1]
        out.append((_nibble(hi) << 4) | _nibble(lo))
    return bytes(out)


def _nibble(ch: str) -> int:
    return 0x0F if ch == "F" else _BCD_DIGITS.index(ch)


def _decode_address(r: _Reader, field: str) -> str:
    """TP-OA / TP-DA / TP-RA (§9.1.2.5): length in semi-octets, type, value."""
    ndigits = r.byte(f"{field} length")
    toa = r.byte(f"{field} type")
    if ndigits > 20:
        raise PduError(f"{field}: length {ndigits} semi-octets exceeds 20")
    raw = r.take((ndigits + 1) // 2, field)
    ton = (toa >> 4) & 0x07
    if ton == 5:
        septets = gsm7.unpack(raw, ndigits * 4 // 7)
        return gsm7.decode(septets)
    number = _bcd_decode(raw, ndigits, field)
    return "+" + number if ton == 1 and number else number


def _encode_address(address: str, field: str, *, allow_alpha: bool) -> bytes:
    if _NUMBER_RE.match(address):
        intl = address.startswith("+")
        digits = address.lstrip("+")
        return bytes([len(digits), 0x91 if intl else 0x81]) + _bcd_encode(digits)
    if allow_alpha and address:
        try:
            septets = gsm7.encode(address)
        except gsm7.Gsm7Error as exc:
            raise PduError(f"{field}: {exc}") from None
        if len(septets) > 11:
            raise PduError(f"{field}: alphanumeric address longer than 11 septets")
        return bytes([-(-len(septets) * 7 // 4), 0xD0]) + gsm7.pack(septets)
    raise PduError(f"{field}: {address!r} is not a number ([+0-9*#], max 20 digits)")


def _decode_smsc(r: _Reader) -> str | None:
    """RP address (TS 24.011 §8.2.5.1): length in octets including the type octet."""
    n = r.byte("SMSC length")
    if n == 0:
        return None
    if n > 11:
        raise PduError(f"SMSC length {n} exceeds 11 octets")
    toa = r.byte("SMSC type")
    raw = r.take(n - 1, "SMSC address")
    digits = []
    for octet in raw:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble == 0x0F:
                break
            digits.append(_BCD_DIGITS[nibble])
    number = "".join(digits)
    if not number:
        return None
    return "+" + number if (toa >> 4) & 0x07 == 1 else number


def _encode_smsc(smsc: str | None) -> bytes:
    if not smsc:
        return b"\x00"
    if not _NUMBER_RE.match(smsc):
        raise PduError(f"smsc: {smsc!r} is not a number ([+0-9*#])")
    intl = smsc.startswith("+")
    body = _bcd_encode(smsc.lstrip("+"))
    return bytes([len(body) + 1, 0x91 if intl else 0x81]) + body


def _swap_bcd(octet: int, field: str) -> int:
    lo, hi = octet & 0x0F, octet >> 4
    if lo > 9 or hi > 9:
        raise PduError(f"{field}: octet {octet:02X} is not BCD")
    return lo * 10 + hi


def _decode_timestamp(r: _Reader, field: str) -> datetime:
    """TP-SCTS format (§9.2.3.11): YY MM DD hh mm ss TZ, semi-octets swapped; TZ in
    quarter hours with bit 3 as the sign."""
    raw = r.take(7, field)
    yy, mo, dd, hh, mi, ss = (_swap_bcd(b, field) for b in raw[:6])
    tzo = raw[6]
    negative = bool(tzo & 0x08)
    quarters = _swap_bcd(tzo & 0xF7, field + " time zone")
    offset = timedelta(minutes=15 * quarters)
    if negative:
        offset = -offset
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=timezone(offset))
    except ValueError as exc:
        raise PduError(f"{field}: {exc}") from None


def _encode_timestamp(ts: datetime, field: str) -> bytes:
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise PduError(f"{field}: needs a timezone-aware datetime")
    if not 2000 <= ts.year <= 2099:
        raise PduError(f"{field}: year {ts.year} outside 2000-2099")
    minutes, rem = divmod(int(ts.utcoffset().total_seconds()), 60)
    if rem or minutes % 15:
        raise PduError(f"{field}: time zone must be whole quarter hours")
    quarters = abs(minutes) // 15
    if quarters > 79:
        raise PduError(f"{field}: time zone offset too large")

    def sw(v: int) -> int:
        return ((v % 10) << 4) | (v // 10)

    out = bytes(sw(v) for v in (ts.year - 2000, ts.month, ts.day, ts.hour, ts.minute, ts.second))
    return out + bytes([sw(quarters) | (0x08 if minutes < 0 else 0)])


# --------------------------------------------------------------------------- validity

def validity_to_minutes(vp: int) -> int:
    """Relative TP-VP octet to minutes (§9.2.3.12.1)."""
    if vp <= 143:
        return (vp + 1) * 5
    if vp <= 167:
        return 12 * 60 + (vp - 143) * 30
    if vp <= 196:
        return (vp - 166) * 24 * 60
    return (vp - 192) * 7 * 24 * 60


def minutes_to_validity(minutes: int) -> int:
    """Smallest relative TP-VP octet lasting at least ``minutes`` (capped at 63 weeks)."""
    if minutes <= 0:
        raise PduError("validity: must be a positive number of minutes")
    if minutes <= 720:
        return max(0, -(-minutes // 5) - 1)
    if minutes <= 1440:
        return 143 + -(-(minutes - 720) // 30)
    if minutes <= 30 * 1440:
        return 166 + -(-minutes // 1440)
    return min(255, 192 + -(-minutes // (7 * 1440)))


# --------------------------------------------------------------------------- user data

def _dcs_alphabet(dcs: int) -> tuple[str, int | None]:
    """Alphabet and message class from TP-DCS (TS 23.038 §4)."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding (00xx) and automatic deletion (01xx)
        if dcs & 0x20:
            raise PduError(f"DCS {dcs:02X}: compressed user data is not supported")
        alpha = ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 3]
        return alpha, (dcs & 3) if dcs & 0x10 else None
    if group in (0xC, 0xD):
        return "gsm7", None
    if group == 0xE:
        return "ucs2", None
    if group == 0xF:
        return ("8bit" if dcs & 0x04 else "gsm7"), dcs & 3
    return "gsm7", None  # reserved groups: receivers assume the default alphabet


def _dcs_for(encoding: str, message_class: int | None) -> int:
    base = {"gsm7": 0x00, "8bit": 0x04, "ucs2": 0x08}[encoding]
    if message_class is not None:
        base |= 0x10 | (message_class & 3)
    return base


def _parse_udh(udh: bytes) -> Concat | None:
    concat = None
    pos = 0
    while pos < len(udh):
        if pos + 2 > len(udh):
            raise PduError("user data header: truncated information element")
        iei, iedl = udh[pos], udh[pos + 1]
        body = udh[pos + 2:pos + 2 + iedl]
        if len(body) != iedl:
            raise PduError(f"user data header: element {iei:02X} truncated")
        pos += 2 + iedl
        if iei == 0x00 and iedl == 3:
            ref, total, seq = body
            bits = 8
        elif iei == 0x08 and iedl == 4:
            ref, total, seq = int.from_bytes(body[:2], "big"), body[2], body[3]
            bits = 16
        else:
            continue
        if total and 1 <= seq <= total:  # §9.2.3.24.1: otherwise ignore the element
            concat = Concat(ref, total, seq, bits)
    return concat


def _build_udh(concat: Concat | None) -> bytes:
    if concat is None:
        return b""
    if concat.ref_bits == 16:
        ie = bytes([0x08, 4]) + concat.ref.to_bytes(2, "big") + bytes([concat.total, concat.seq])
    else:
        ie = bytes([0x00, 3, concat.ref, concat.total, concat.seq])
    return bytes([len(ie)]) + ie


def _decode_user_data(r: _Reader, dcs: int, udhi: bool):
    encoding, mclass = _dcs_alphabet(dcs)
    udl = r.byte("TP-UDL")
    if encoding == "gsm7":
        if udl > 160:
            raise PduError(f"TP-UDL {udl} exceeds 160 septets")
        raw = r.take(-(-udl * 7 // 8), "TP-UD")
    else:
        if udl > 140:
            raise PduError(f"TP-UDL {udl} exceeds 140 octets")
        raw = r.take(udl, "TP-UD")
    concat = None
    header_len = 0
    if udhi:
        if not raw:
            raise PduError("TP-UDHI set but user data is empty")
        header_len = raw[0] + 1
        if header_len > len(raw):
            raise PduError("user data header longer than the user data")
        concat = _parse_udh(raw[1:header_len])
    data = None
    if encoding == "gsm7":
        hdr_septets = -(-header_len * 8 // 7)
        if hdr_septets > udl:
            raise PduError("user data header longer than TP-UDL")
        fill = hdr_septets * 7 - header_len * 8
        try:
            septets = gsm7.unpack(raw[header_len:], udl - hdr_septets, fill)
        except gsm7.Gsm7Error as exc:
            raise PduError(f"TP-UD: {exc}") from None
        text = gsm7.decode(septets)
    elif encoding == "ucs2":
        body = raw[header_len:]
        if len(body) % 2:
            raise PduError("TP-UD: UCS2 text has an odd number of octets")
        text = body.decode("utf-16-be", errors="replace")
    else:
        data = bytes(raw[header_len:])
        text = ""
    return text, encoding, data, concat, mclass


def _encode_user_data(text: str, encoding: str, data: bytes | None,
                      concat: Concat | None) -> tuple[int, bytes]:
    udh = _build_udh(concat)
    if encoding == "gsm7":
        septets = gsm7.encode(text)
        hdr_septets = -(-len(udh) * 8 // 7)
        fill = hdr_septets * 7 - len(udh) * 8
        udl = hdr_septets + len(septets)
        if udl > 160:
            raise PduError(f"text: {udl} septets exceed 160")
        return udl, udh + gsm7.pack(septets, fill)
    body = data if encoding == "8bit" else text.encode("utf-16-be")
    if len(udh) + len(body) > 140:
        raise PduError("text: user data exceeds 140 octets")
    return len(udh) + len(body), udh + (body or b"")


# --------------------------------------------------------------------------- decode

def _from_hex(pdu_hex: str) -> bytes:
    if not isinstance(pdu_hex, str):
        raise PduError("PDU must be a hex string")
    cleaned = "".join(pdu_hex.split())
    if len(cleaned) % 2:
        raise PduError("PDU hex has an odd number of digits")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise PduError("PDU contains non-hex characters") from None


def decode(pdu_hex: str, *, incoming: bool = True, smsc_included: bool = True):
    """Decode one PDU.  ``incoming`` picks the direction that gives TP-MTI its meaning
    (§9.2.3.1): SC→MS (DELIVER, STATUS-REPORT) or MS→SC (SUBMIT)."""
    try:
        return _decode(_from_hex(pdu_hex), incoming, smsc_included)
    except PduError:
        raise
    except Exception as exc:  # defensive: nothing but PduError escapes
        raise PduError(f"malformed PDU: {exc}") from None


def _decode(raw: bytes, incoming: bool, smsc_included: bool):
    r = _Reader(raw)
    smsc = _decode_smsc(r) if smsc_included else None
    first = r.byte("first octet")
    mti = first & 0x03
    udhi = bool(first & 0x40)
    if incoming and mti == 0:
        sender = _decode_address(r, "TP-OA")
        r.byte("TP-PID")
        dcs = r.byte("TP-DCS")
        scts = _decode_timestamp(r, "TP-SCTS")
        text, enc, data, concat, mclass = _decode_user_data(r, dcs, udhi)
        return Deliver(smsc, sender, text, scts, enc, data, concat, bool(first & 0x20), mclass)
    if incoming and mti == 2:
        mr = r.byte("TP-MR")
        recipient = _decode_address(r, "TP-RA")
        scts = _decode_timestamp(r, "TP-SCTS")
        dt = _decode_timestamp(r, "TP-DT")
        st = r.byte("TP-ST")
        return StatusReport(smsc, mr, recipient, scts, dt, st)
    if not incoming and mti == 1:
        mr = r.byte("TP-MR")
        recipient = _decode_address(r, "TP-DA")
        r.byte("TP-PID")
        dcs = r.byte("TP-DCS")
        vpf = (first >> 3) & 3
        validity = None
        if vpf == 2:
            validity = validity_to_minutes(r.byte("TP-VP"))
        elif vpf in (1, 3):
            r.take(7, "TP-VP")  # enhanced / absolute: accepted, not represented
        text, enc, data, concat, mclass = _decode_user_data(r, dcs, udhi)
        return Submit(smsc, recipient, text, enc, data, concat, mr, bool(first & 0x20),
                      validity, mclass)
    kind = {0: "SMS-DELIVER", 1: "SMS-SUBMIT(-REPORT)", 2: "SMS-STATUS-REPORT/COMMAND",
            3: "reserved"}[mti]
    raise PduError(f"TP-MTI {mti} ({kind}) not handled in the "
                   f"{'incoming' if incoming else 'outgoing'} direction")


# --------------------------------------------------------------------------- encode

def choose_encoding(text) -> str:
    if isinstance(text, (bytes, bytearray)):
        return "8bit"
    return "gsm7" if gsm7.can_encode(text) else "ucs2"


def _split_ucs2(text: str, limit_units: int) -> list[str]:
    """UTF-16 code units per part; a surrogate pair (emoji) is never cut."""
    return gsm7.chunk(text, limit_units, lambda ch: 2 if ord(ch) > 0xFFFF else 1)


def _split(text, encoding: str, ref_bits: int) -> list:
    udh = 6 if ref_bits == 8 else 7
    if encoding == "gsm7":
        if gsm7.septet_length(text) <= 160:
            return [text]
        return gsm7.split(text, (140 - udh) * 8 // 7)
    if encoding == "ucs2":
        for ch in text:
            if 0xD800 <= ord(ch) <= 0xDFFF:
                raise PduError(f"text: lone surrogate U+{ord(ch):04X}")
        if len(text.encode("utf-16-be")) <= 140:
            return [text]
        return _split_ucs2(text, (140 - udh) // 2)
    data = bytes(text)
    if len(data) <= 140:
        return [data]
    step = 140 - udh
    return [data[i:i + step] for i in range(0, len(data), step)]


def count_parts(text, encoding: str | None = None) -> int:
    """How many SMS parts ``text`` needs (for billing / limits)."""
    return len(_split(text, encoding or choose_encoding(text), 8))


_ref_counter = itertools.count(random.randrange(256))


def _parts(text, encoding, concat_ref):
    if encoding is None:
        encoding = choose_encoding(text)
    if encoding not in ("gsm7", "ucs2", "8bit"):
        raise PduError(f"encoding: {encoding!r} is not gsm7, ucs2 or 8bit")
    if encoding == "8bit" and not isinstance(text, (bytes, bytearray)):
        raise PduError("text: 8bit encoding needs bytes")
    if encoding != "8bit" and not isinstance(text, str):
        raise PduError("text: must be str for gsm7/ucs2")
    if encoding == "gsm7" and not gsm7.can_encode(text):
        raise PduError("text: contains characters outside the GSM 7-bit alphabet")
    if concat_ref is not None and not 0 <= concat_ref <= 0xFFFF:
        raise PduError("concat_ref: must be 0..65535")
    bits = 16 if concat_ref is not None and concat_ref > 0xFF else 8
    chunks = _split(text, encoding, bits)
    if len(chunks) > 255:
        raise PduError("text: more than 255 parts")
    if len(chunks) == 1:
        return encoding, [(chunks[0], None)]
    ref = next(_ref_counter) & 0xFF if concat_ref is None else concat_ref
    return encoding, [(c, Concat(ref, len(chunks), i + 1, bits)) for i, c in enumerate(chunks)]


def _payload(chunk, encoding):
    if encoding == "8bit":
        return "", bytes(chunk)
    return chunk, None


def encode_submit(recipient: str, text, *, smsc: str | None = None, message_ref: int = 0,
                  status_report: bool = False, validity_minutes: int | None = None,
                  encoding: str | None = None, concat_ref: int | None = None,
                  message_class: int | None = None) -> list[tuple[str, int]]:
    """SMS-SUBMIT parts as ``(pdu_hex, tpdu_length)``; the length is what AT+CMGS wants
    (TS 27.005 §3.5.1: octets after the SMSC address).  ``message_ref`` is used for
    the first part and incremented per part (modems usually overwrite TP-MR)."""
    if not 0 <= message_ref <= 255:
        raise PduError("message_ref: must be 0..255")
    head = _encode_address(recipient, "recipient", allow_alpha=False)
    sc = _encode_smsc(smsc)
    vp = b"" if validity_minutes is None else bytes([minutes_to_validity(validity_minutes)])
    encoding, parts = _parts(text, encoding, concat_ref)
    out = []
    for i, (chunk, concat) in enumerate(parts):
        txt, data = _payload(chunk, encoding)
        udl, ud = _encode_user_data(txt, encoding, data, concat)
        first = 0x01 | (0x10 if vp else 0) | (0x20 if status_report else 0) | (0x40 if concat else 0)
        tpdu = (bytes([first, (message_ref + i) & 0xFF]) + head
                + bytes([0, _dcs_for(encoding, message_class)]) + vp + bytes([udl]) + ud)
        out.append(((sc + tpdu).hex().upper(), len(tpdu)))
    return out


def encode_submit_part(recipient: str, text, concat: Concat | None = None, *,
                       smsc: str | None = None, message_ref: int = 0,
                       status_report: bool = False, validity_minutes: int | None = None,
                       encoding: str | None = None,
                       message_class: int | None = None) -> tuple[str, int]:
    """One SMS-SUBMIT with the caller's own concatenation element (a durable queue that
    sends and records part by part).  ``text`` must fit one part with that header."""
    if not 0 <= message_ref <= 255:
        raise PduError("message_ref: must be 0..255")
    encoding = encoding or choose_encoding(text)
    if encoding not in ("gsm7", "ucs2", "8bit"):
        raise PduError(f"encoding: {encoding!r} is not gsm7, ucs2 or 8bit")
    if encoding == "gsm7" and not gsm7.can_encode(text):
        raise PduError("text: contains characters outside the GSM 7-bit alphabet")
    head = _encode_address(recipient, "recipient", allow_alpha=False)
    vp = b"" if validity_minutes is None else bytes([minutes_to_validity(validity_minutes)])
    txt, data = _payload(text, encoding)
    udl, ud = _encode_user_data(txt, encoding, data, concat)
    first = 0x01 | (0x10 if vp else 0) | (0x20 if status_report else 0) | (0x40 if concat else 0)
    tpdu = (bytes([first, message_ref]) + head + bytes([0, _dcs_for(encoding, message_class)])
            + vp + bytes([udl]) + ud)
    return (_encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)


def encode_deliver(sender: str, text, timestamp: datetime, *, smsc: str | None = None,
                   status_report_indication: bool = False, encoding: str | None = None,
                   concat_ref: int | None = None,
                   message_class: int | None = None) -> list[tuple[str, int]]:
    """SMS-DELIVER parts (what a network / the simulator sends to a module)."""
    head = _encode_address(sender, "sender", allow_alpha=True)
    sc = _encode_smsc(smsc)
    ts = _encode_timestamp(timestamp, "timestamp")
    encoding, parts = _parts(text, encoding, concat_ref)
    out = []
    for chunk, concat in parts:
        txt, data = _payload(chunk, encoding)
        udl, ud = _encode_user_data(txt, encoding, data, concat)
        first = 0x04 | (0x20 if status_report_indication else 0) | (0x40 if concat else 0)
        tpdu = (bytes([first]) + head + bytes([0, _dcs_for(encoding, message_class)])
                + ts + bytes([udl]) + ud)
        out.append(((sc + tpdu).hex().upper(), len(tpdu)))
    return out


def encode_status_report(message_ref: int, recipient: str, scts: datetime,
                         discharge_time: datetime, status: int, *,
                         smsc: str | None = None) -> tuple[str, int]:
    if not 0 <= message_ref <= 255:
        raise PduError("message_ref: must be 0..255")
    if not 0 <= status <= 255:
        raise PduError("status: must be 0..255")
    tpdu = (bytes([0x06, message_ref])
            + _encode_address(recipient, "recipient", allow_alpha=True)
            + _encode_timestamp(scts, "scts") + _encode_timestamp(discharge_time, "discharge_time")
            + bytes([status]))
    return (_encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)


from goip_tw.modem.concat import Reassembler  # noqa: E402  (public here too)
