"""SMS value types, alphabets and splitting.

Alphabet and size rules come from 3GPP TS 23.038 (GSM 7-bit default alphabet and
its extension table) and TS 23.040 (160 septets / 140 octets per TP-UD; a
concatenation UDH of 6 octets, IEI 0x00, leaves 153 septets or 67 UCS2 units).
A text is split exactly once, when it is accepted, and the parts are stored: the
phone reassembles them and the gateway counts the message once (F-304).
"""

from __future__ import annotations

import enum

import attrs

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {
    "\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}
_BASIC_INDEX = {ch: i for i, ch in enumerate(GSM7_BASIC) if ch != "\x1b"}
_EXT_REVERSE = {v: k for k, v in GSM7_EXTENSION.items()}

SINGLE_LIMIT = {"gsm7": 160, "ucs2": 70}
PART_LIMIT = {"gsm7": 153, "ucs2": 67}
MAX_PARTS = 255


class State(str, enum.Enum):
    """Life cycle of an outgoing message (and of each of its parts)."""

    ASSEMBLING = "assembling"  # SMPP UDH/sar fragments still arriving
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a line; the module may have it
    SENT = "sent"  # every part has the module's message reference
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({State.DELIVERED, State.FAILED, State.EXPIRED, State.CANCELLED})


class EncodeError(ValueError):
    """A text or payload that cannot be represented; the message names the field."""


def gsm7_septets(text: str) -> int | None:
    """Septet count of ``text`` in the GSM default alphabet, or None if not encodable."""
    n = 0
    for ch in text:
        if ch in _BASIC_INDEX:
            n += 1
        elif ch in GSM7_EXTENSION:
            n += 2
        else:
            return None
    return n


def air_coding(text: str) -> str:
    """The coding the radio side uses: GSM 7-bit when possible, else UCS2."""
    return "gsm7" if gsm7_septets(text) is not None else "ucs2"


def gsm7_encode_unpacked(text: str) -> bytes:
    """One septet per octet, escapes as 0x1B + code (SMPP data_coding 0 default)."""
    out = bytearray()
    for pos, ch in enumerate(text):
        if ch in _BASIC_INDEX:
            out.append(_BASIC_INDEX[ch])
        elif ch in GSM7_EXTENSION:
            out += bytes((0x1B, GSM7_EXTENSION[ch]))
        else:
            raise EncodeError(f"character {ch!r} at {pos} is not in the GSM 7-bit alphabet")
    return bytes(out)


def gsm7_decode_unpacked(data: bytes) -> str:
    out = []
    escape = False
    for octet in data:
        octet &= 0x7F
        if escape:
            out.append(_EXT_REVERSE.get(octet, " "))
            escape = False
        elif octet == 0x1B:
            escape = True
        else:
            out.append(GSM7_BASIC[octet])
    return "".join(out)


def _units(text: str, coding: str) -> list[tuple[str, int]]:
    """Characters with their size in the coding's units (septets or UTF-16 units)."""
    if coding == "gsm7":
        return [(ch, 2 if ch in GSM7_EXTENSION else 1) for ch in text]
    return [(ch, 2 if ord(ch) > 0xFFFF else 1) for ch in text]


def fits_one_part(text: str) -> bool:
    """Whether a client-split fragment fits one concatenated part (with its UDH)."""
    coding = air_coding(text)
    return sum(size for _, size in _units(text, coding)) <= PART_LIMIT[coding]


def split_text(text: str, coding: str | None = None) -> list[str]:
    """Split ``text`` into the parts sent on air; never splits an escape or a surrogate pair."""
    coding = coding or air_coding(text)
    units = _units(text, coding)
    if sum(size for _, size in units) <= SINGLE_LIMIT[coding]:
        return [text]
    limit = PART_LIMIT[coding]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch, size in units:
        if used + size > limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += size
    if current:
        parts.append("".join(current))
    if len(parts) > MAX_PARTS:
        raise EncodeError(f"text: {len(parts)} parts exceed the {MAX_PARTS}-part limit")
    return parts


def decode_data_coding(data: bytes, data_coding: int, default_alphabet: str = "gsm7") -> str:
    """Decode an SMPP/SMS payload by its data_coding (SMPP 3.4 §5.2.19).

    0 = SMSC default alphabet (configurable: unpacked GSM 7-bit or ASCII),
    1 = IA5/ASCII, 3 = Latin-1, 8 = UCS2 (UTF-16BE, surrogates allowed so emoji survive).
    Data codings 0xF0-0xFF carry the TS 23.038 coding group in the low nibble.
    """
    if 0xF0 <= data_coding <= 0xFF:
        data_coding = 4 if data_coding & 0x04 else 0
    if data_coding == 0:
        if default_alphabet == "gsm7":
            return gsm7_decode_unpacked(data)
        return data.decode("ascii", "replace")
    if data_coding == 1:
        return data.decode("ascii", "replace")
    if data_coding == 3:
        return data.decode("latin-1")
    if data_coding == 8:
        if len(data) % 2:
            raise EncodeError("short_message: UCS2 payload has an odd length")
        return data.decode("utf-16-be", "replace")
    raise EncodeError(f"data_coding: {data_coding:#x} is not supported (0, 1, 3, 8)")


def encode_data_coding(text: str, default_alphabet: str = "gsm7") -> tuple[int, bytes]:
    """Choose the SMPP data_coding for ``text`` going to a client (deliver_sm)."""
    if gsm7_septets(text) is not None:
        if default_alphabet == "gsm7":
            return 0, gsm7_encode_unpacked(text)
        if text.isascii():
            return 0, text.encode("ascii")
    return 8, text.encode("utf-16-be")


@attrs.frozen
class Submission:
    """A message as an interface hands it to the router, before it is stored.

    ``parts`` is set when the client already split the text (SMPP UDH/sar fragments
    arrive as one Submission per fragment with ``fragment`` = (ref, total, seq)).
    """

    recipient: str
    text: str
    source: str  # smpp, sip, web, http, goip, forward
    source_ref: str = ""  # SMPP system_id, SIP Call-ID, HTTP user ...
    sender: str = ""
    line: int | None = None  # explicit line (SMPP 10N ids, send.html l=, web)
    report: int = 0  # receipt wanted: SMPP registered_delivery bits 0-1 (1 always, 2 failures)
    validity: float | None = None  # seconds; None = queue default
    fragment: tuple[int, int, int] | None = None
    delay: float | None = None  # scheduled delivery: seconds from now (SMPP)


@attrs.frozen
class Accepted:
    """What an interface may tell its client once the store has committed."""

    message_id: str
    message: int
    parts: int


@attrs.frozen
class Outgoing:
    """A stored outgoing message as the queue schedules it."""

    id: int
    recipient: str
    parts: tuple[str, ...]
    line: int | None
    state: State
    attempts: int = 0
    expires_at: float = 0.0
    concat_ref: int = 0
    sent_parts: int = 0  # parts already confirmed by the module (resume after a crash)
    tried_lines: tuple[int, ...] = ()
    source: str = ""
    source_ref: str = ""
    sender: str = ""
    report: bool = False
    not_before: float = 0.0  # scheduled delivery time


@attrs.frozen
class StatusReport:
    """A status report (SMS-STATUS-REPORT, TS 23.040 §9.2.2.3) from a line."""

    line: int
    mr: int
    delivered: bool
    final: bool = True
    status: int = 0  # TP-ST
    scts: float | None = None  # service-centre time stamp of the submit (epoch seconds)
