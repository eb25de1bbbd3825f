"""Forward number forms (F-451 outgoing, F-463 incoming) and the mobile cause map
(F-432).  Pure functions over config strings."""

from __future__ import annotations

import attrs

from goip_tw.config.sections.calls import parse_cause_map

#: Final result codes some modules report instead of a +CEER cause.
RESULT_CAUSES = {"BUSY": 17, "NO ANSWER": 19, "NO CARRIER": 16, "NO DIALTONE": 34}
#: SIP code when the map has no entry for a cause (RFC 3398: "unspecified" -> 480).
FALLBACK_CODE = 480


@attrs.frozen
class OutForward:
    """F-451: ``kind`` is "none", "plain" (skip the second dial) or "m1"."""

    kind: str
    number: str = ""


def parse_out_forward(value: str) -> OutForward:
    value = value.strip()
    if not value:
        return OutForward("none")
    if value[:3].upper() == "M1:":
        return OutForward("m1", value[3:])
    return OutForward("plain", value)


@attrs.frozen
class InForward:
    """F-463: where an incoming mobile call goes.

    ``two_stage``: answer and collect digits; else ``target`` (an extension or
    ``user@host:port``), or None when a caller-prefix map has no entry for the caller.
    """

    two_stage: bool
    target: str | None = None


def parse_in_forward(value: str, caller: str) -> InForward:
    value = value.strip()
    if not value:
        return InForward(True)
    if ">" not in value:
        return InForward(False, value)
    best, target = -1, None
    for entry in value.split("|"):
        prefix, _, dest = entry.partition(">")
        if caller.startswith(prefix) and len(prefix) > best:
            best, target = len(prefix), dest
    return InForward(False, target)


def cause_of(cause: int | None, text: str | None) -> int | None:
    """The numeric cause, falling back to a final result code's usual cause."""
    if cause is not None:
        return cause
    return RESULT_CAUSES.get((text or "").strip().upper())


def sip_code_for(cause_map: str, cause: int | None, text: str | None = None) -> int:
    """F-432: the SIP response for a mobile call that ended before answer."""
    c = cause_of(cause, text)
    if c is None:
        return FALLBACK_CODE
    return parse_cause_map(cause_map).get(c, FALLBACK_CODE)
