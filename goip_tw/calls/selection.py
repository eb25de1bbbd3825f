"""Choosing the line for an outgoing call: prefix matching (F-411/F-412, Appendix D)
then the selection rule (F-421) among eligible lines.

Pure values and functions; the controller feeds in a snapshot of every line.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import attrs

ROUND_ROBIN = "round_robin"
LEAST_TALK_TIME = "least_talk_time"


@attrs.frozen
class LineInfo:
    """What selection needs to know about one line right now."""

    number: int
    enabled: bool = True
    registered: bool = True      # GSM network registration (F-304 REG)
    idle: bool = True
    allow_pstn: bool = True      # F-450
    within_limits: bool = True   # the bound SIM still has talk time/calls (F-472/473)
    talk_seconds: int = 0        # total talk time, for least-talk-time (F-421)

    @property
    def eligible(self) -> bool:
        return (self.enabled and self.registered and self.idle and self.allow_pstn
                and self.within_limits)


@attrs.frozen
class PrefixMatch:
    """Lines whose prefix matched, and the matched prefix (for strip-prefix)."""

    lines: frozenset[int]
    prefix: str


def parse_prefixes(text: str) -> tuple[str, ...]:
    """F-411 list ``00,13,15,17,2`` (digits, letters, symbols; at most 140 chars)."""
    if len(text) > 140:
        raise ValueError(f"prefix list has {len(text)} characters, at most 140 allowed")
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    for p in items:
        if any(c.isspace() or c in "|," for c in p):
            raise ValueError(f"bad prefix {p!r}")
    return items


def match_prefix(prefixes: dict[int, Sequence[str]], number: str) -> PrefixMatch | None:
    """Lines with a prefix of ``number``; the longest matching prefix wins, so a line
    with ``1001`` beats a line with ``1`` (Appendix D scheme 1 with extensions 101..108
    and a catch-all).  None when no line matches (F-412: the caller replies 603)."""
    best_len = -1
    best: set[int] = set()
    best_prefix = ""
    for line, plist in prefixes.items():
        for p in plist:
            if number.startswith(p):
                if len(p) > best_len:
                    best_len, best, best_prefix = len(p), {line}, p
                elif len(p) == best_len:
                    best.add(line)
    if best_len < 0:
        return None
    return PrefixMatch(frozenset(best), best_prefix)


class LineSelector:
    """F-421 selection with its round-robin memory (one per gateway).

    Round robin goes in line order starting after the line chosen last time, so
    consecutive calls spread over the lines; least talk time picks the line whose
    SIM has talked least (ties: lower line number).
    """

    def __init__(self, mode: str = ROUND_ROBIN):
        self.mode = mode
        self._last: int | None = None

    def choose(self, lines: Iterable[LineInfo], allowed: Iterable[int] | None = None
               ) -> LineInfo | None:
        allowed_set = set(allowed) if allowed is not None else None
        candidates = sorted((li for li in lines if li.eligible and (
            allowed_set is None or li.number in allowed_set)), key=lambda li: li.number)
        if not candidates:
            return None
        if self.mode == LEAST_TALK_TIME:
            chosen = min(candidates, key=lambda li: (li.talk_seconds, li.number))
        else:
            after = [li for li in candidates if self._last is None or li.number > self._last]
            chosen = after[0] if after else candidates[0]
        self._last = chosen.number
        return chosen

    @staticmethod
    def why_none(lines: Iterable[LineInfo], allowed: Iterable[int] | None = None) -> str:
        """A short reason for the log when choose() found nothing."""
        allowed_set = set(allowed) if allowed is not None else None
        pool = [li for li in lines if allowed_set is None or li.number in allowed_set]
        if not pool:
            return "no line configured for this number"
        reasons = []
        for li in pool:
            for flag, text in ((li.enabled, "disabled"), (li.registered, "not registered"),
                               (li.idle, "busy"), (li.allow_pstn, "PSTN calls off"),
                               (li.within_limits, "limit reached")):
                if not flag:
                    reasons.append(f"line {li.number} {text}")
                    break
        return "; ".join(reasons)
