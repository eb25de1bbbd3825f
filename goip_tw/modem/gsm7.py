"""GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 §6.2.1).

Pure functions, no I/O.  ``encode`` turns text into septets (an escape 0x1B precedes
every extension-table character), ``pack``/``unpack`` fold septets into octets
least-significant bit first (TS 23.038 §6.1.2.1.1), with optional fill bits for a
user data header (TS 23.040 §9.2.3.24).
"""

from __future__ import annotations

ESCAPE = 0x1B

#: Basic character set, index = septet value (TS 23.038 §6.2.1).  0x1B is the escape.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

#: Extension table (TS 23.038 §6.2.1.1), reached through the escape septet.
EXTENSION = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_BASIC_REVERSE = {ch: i for i, ch in enumerate(BASIC) if i != ESCAPE}
_EXT_REVERSE = {ch: code for code, ch in EXTENSION.items()}


class Gsm7Error(ValueError):
    """A character has no GSM 7-bit representation."""


def char_septets(ch: str) -> tuple[int, ...]:
    """Septets for one character: one for the basic set, two (escape + code) for the
    extension table; raises Gsm7Error otherwise."""
    code = _BASIC_REVERSE.get(ch)
    if code is not None:
        return (code,)
    code = _EXT_REVERSE.get(ch)
    if code is not None:
        return (ESCAPE, code)
    raise Gsm7Error(f"character {ch!r} (U+{ord(ch):04X}) is not in the GSM 7-bit alphabet")


def can_encode(text: str) -> bool:
    return all(ch in _BASIC_REVERSE or ch in _EXT_REVERSE for ch in text)


def septet_length(text: str) -> int:
    """Number of septets ``text`` needs (extension characters count twice)."""
    return sum(2 if ch in _EXT_REVERSE else 1 for ch in text)


def encode(text: str) -> list[int]:
    out: list[int] = []
    for ch in text:
        out.extend(char_septets(ch))
    return out


def decode(septets) -> str:
    """Septets to text.  An escape followed by an undefined code gives the basic
    character for that code, and a dangling escape gives a space, as TS 23.038 §6.2.1.1
    asks of receivers."""
    out = []
    escaped = False
    for s in septets:
        s &= 0x7F
        if escaped:
            out.append(EXTENSION.get(s, BASIC[s] if s != ESCAPE else " "))
            escaped = False
        elif s == ESCAPE:
            escaped = True
        else:
            out.append(BASIC[s])
    if escaped:
        out.append(" ")
    return "".join(out)


def pack(septets, fill_bits: int = 0) -> bytes:
    """Pack septets LSB first after ``fill_bits`` zero bits (TS 23.038 §6.1.2.1.1)."""
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits > 0:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Unpack ``count`` septets that start ``fill_bits`` bits into ``data``.

    Raises Gsm7Error when ``data`` is too short for ``count`` septets."""
    if fill_bits + 7 * count > 8 * len(data):
        raise Gsm7Error(
            f"{count} septets need {(fill_bits + 7 * count + 7) // 8} octets, have {len(data)}"
        )
    value = int.from_bytes(data, "little")
    value >>= fill_bits
    return [(value >> (7 * i)) & 0x7F for i in range(count)]


def chunk(text: str, limit: int, cost) -> list[str]:
    """Split text into pieces whose summed ``cost(ch)`` stays within ``limit``; a
    character is never cut (escape + code, surrogate pair)."""
    parts: list[str] = []
    cur: list[str] = []
    used = 0
    for ch in text:
        n = cost(ch)
        if used + n > limit:
            parts.append("".join(cur))
            cur, used = [], 0
        cur.append(ch)
        used += n
    if cur or not parts:
        parts.append("".join(cur))
    return parts


def split(text: str, limit: int) -> list[str]:
    """Split into parts of at most ``limit`` septets, never separating an escape from
    its extension code (TS 23.040 §9.2.3.24.1 note on concatenation)."""
    return chunk(text, limit, lambda ch: 2 if ch in _EXT_REVERSE else 1)
