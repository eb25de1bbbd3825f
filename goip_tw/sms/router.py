"""Which line sends a message, and what number it dials.

Line choice follows F-411 (a recipient, or for SIP MESSAGE also a caller, matching
a line's prefix list selects that line; "strip prefix" removes the matched prefix)
and otherwise round robin among lines that may still send (F-1801 says the same for
SIP MESSAGE).  The recipient is then rewritten by the SMS dial rules (F-493, syntax
of F-1701, implemented in goip_tw/calls/dialrules.py); dial rules never pick lines.
"""

from __future__ import annotations

from typing import Iterable

import attrs

from goip_tw.calls.dialrules import DialRules, NumberRejected, parse_dial_rules


class RouteError(ValueError):
    """No route for a message: the text names the field at fault."""


@attrs.frozen
class Route:
    dest: str  # the number the module dials
    lines: tuple[int, ...] | None  # None = any line


def _valid_number(number: str) -> bool:
    body = number[1:] if number.startswith("+") else number
    return 0 < len(body) <= 20 and body.isdigit()


@attrs.define
class Router:
    """Pure routing policy; the queue asks it, the config builds it."""

    rules: DialRules = attrs.field(factory=DialRules)
    strict: bool = False
    prefixes: dict[int, tuple[str, ...]] = attrs.field(factory=dict)
    strip_prefix: bool = False
    match_caller: bool = False
    _rr: int = 0

    @classmethod
    def from_settings(cls, rewrite_rules: str = "", strict: bool = False,
                      prefixes: dict[int, Iterable[str]] | None = None,
                      strip_prefix: bool = False, match_caller: bool = False) -> "Router":
        return cls(rules=parse_dial_rules(rewrite_rules), strict=strict,
                   prefixes={n: tuple(p for p in ps if p) for n, ps in (prefixes or {}).items()},
                   strip_prefix=strip_prefix, match_caller=match_caller)

    def _match(self, number: str) -> tuple[tuple[int, ...], str]:
        best, lines = "", []
        for line, prefixes in sorted(self.prefixes.items()):
            for p in prefixes:
                if number.startswith(p) and len(p) >= len(best):
                    if len(p) > len(best):
                        best, lines = p, []
                    lines.append(line)
        return tuple(lines), best

    def route(self, recipient: str, sender: str = "", line: int | None = None) -> Route:
        """Decide the dialled number and the eligible lines when a message is accepted."""
        number = recipient.strip().replace(" ", "").replace("-", "")
        lines: tuple[int, ...] | None = None
        if line is not None:
            lines = (line,)
        else:
            matched, prefix = self._match(number)
            if matched:
                lines = matched
                if self.strip_prefix:
                    number = number[len(prefix):]
            elif self.match_caller and sender:
                matched, _ = self._match(sender)
                lines = matched or None
        try:
            dest = self.rules.rewrite(number, self.strict)
        except NumberRejected:
            raise RouteError(f"recipient: {recipient!r} matches no dial rule (strict)") from None
        if not _valid_number(dest):
            raise RouteError(f"recipient: {recipient!r} is not a phone number")
        return Route(dest, lines)

    def eligible(self, lines: tuple[int, ...] | None, tried: Iterable[int],
                 available: Iterable[int]) -> list[int]:
        tried = set(tried)
        return [n for n in available if (lines is None or n in lines) and n not in tried]

    def pick(self, candidates: list[int]) -> int | None:
        """Round robin in line order among ``candidates`` (idle lines that may send)."""
        if not candidates:
            return None
        ordered = sorted(candidates)
        for n in ordered:
            if n > self._rr:
                self._rr = n
                return n
        self._rr = ordered[0]
        return ordered[0]
