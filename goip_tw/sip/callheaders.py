"""Headers and bodies a call leg writes or reads (helpers of ``goip_tw.sip.ua``).

Caller-ID pass-through headers (F-461), SIP INFO DTMF bodies (F-427), the SDP
direction of a re-INVITE answer (RFC 3264 §8.4).
"""

from __future__ import annotations

import ipaddress

CALLER_ID_MODES = ("off", "rpid", "from", "pai")
DTMF_CHARS = set("0123456789*#ABCDabcd")
_DTMF_CHARS = DTMF_CHARS


def uri_user(uri) -> str:
    """The number of a URI: the user part of ``sip:``/``sips:``, the subscriber of
    ``tel:`` (RFC 3966, parameters dropped), else ``""``."""
    if uri is None:
        return ""
    if getattr(uri, "scheme", "sip") == "tel":
        return str(uri.host).split(";", 1)[0].strip()
    return getattr(uri, "user", None) or ""


def is_ip(host: str) -> bool:
    """An IP literal (no DNS needed)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


_MIRROR = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
           "sendrecv": "sendrecv"}
_DIRECTIONS = tuple(b"a=" + d.encode() for d in _MIRROR)


def mirror_direction(local_sdp: bytes, offer: bytes) -> bytes:
    """Our answer to a re-INVITE offer: the direction mirrored (RFC 3264 §6.1, §8.4),
    with the o= version raised when the session changes (§8)."""
    from goip_tw.sip.dialog import hold_direction

    return with_direction(local_sdp, _MIRROR[hold_direction(offer)])


def with_direction(local_sdp: bytes, direction: str) -> bytes:
    """``local_sdp`` with its audio direction set to ``direction`` (a=sendonly for
    hold, RFC 3264 §8.4) and the o= version raised when that changes anything
    (§8: an unchanged description keeps its version)."""
    wanted = b"a=" + direction.encode()
    lines = local_sdp.split(b"\r\n")
    out, found = [], False
    for line in lines:
        if line in _DIRECTIONS:
            found = True
            line = wanted
        out.append(line)
    if not found and wanted != b"a=sendrecv":
        end = len(out) - 1 if out and out[-1] == b"" else len(out)
        out.insert(end, wanted)
    result = b"\r\n".join(out)
    if result == local_sdp:
        return local_sdp
    bumped = []
    for line in result.split(b"\r\n"):
        if line.startswith(b"o="):
            parts = line.split(b" ")
            if len(parts) >= 3 and parts[2].isdigit():
                parts[2] = str(int(parts[2]) + 1).encode()
                line = b" ".join(parts)
        bumped.append(line)
    return b"\r\n".join(bumped)


def parse_dtmf_info(content_type: str, body: bytes) -> tuple[str, int] | None:
    """Digit and duration of an INFO (application/dtmf-relay or application/dtmf)."""
    text = body.decode("utf-8", "replace").strip()
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/dtmf" and len(text) == 1 and text in _DTMF_CHARS:
        return text.upper(), 100
    if ctype != "application/dtmf-relay":
        return None
    digit, duration = None, 100
    for line in text.splitlines():
        key, _, value = line.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key == "signal" and len(value) == 1 and value in _DTMF_CHARS:
            digit = value.upper()
        elif key == "duration" and value.isdigit():
            duration = min(int(value), 10000)
    return (digit, duration) if digit else None


def caller_id_headers(mode: str, caller: str, display: str, account_user: str,
                      domain: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(From user, From display, extra headers) for F-461 caller-ID pass-through.

    off: From = the account; rpid: Remote-Party-ID (draft-ietf-sip-privacy-04, as
    the manual's "use Remote Party ID"); from: From user = caller ID (manual "use
    CID as SIP caller number"); pai: P-Asserted-Identity (RFC 3325).
    """
    if mode not in CALLER_ID_MODES:
        raise ValueError(f"unknown caller ID mode {mode!r}")
    if not caller or mode == "off":
        return account_user, "", []
    if mode == "from":
        return caller, display or caller, []
    ident = f"<sip:{caller}@{domain}>"
    if display:
        ident = f'"{display}" {ident}'
    if mode == "rpid":
        return account_user, "", [("Remote-Party-ID",
                                   f"{ident};party=calling;screen=yes;privacy=off")]
    return account_user, "", [("P-Asserted-Identity", ident)]
