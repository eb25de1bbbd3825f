"""Line and group selection by number prefix (F-411, F-412, F-413, F-1603).

Pure logic: the calls engineer asks ``PrefixRouter.route(caller, callee)`` which
lines may carry a VoIP->GSM call and which number to dial; ``None`` means the
INVITE must be rejected with 603 (manual §4.3 "per line": a call whose caller or
callee matches no line's gateway prefix is refused with 603).  Choosing one free
line among the candidates (round robin, least talk time, F-421) is the call
layer's job; dial rules (F-1701) rewrite numbers afterwards and never select lines.

Matching rules (manual §4.3 and Appendix D; where silent, ours):

- prefixes are compared as plain text (digits, letters, symbols); the longest
  matching prefix wins, and every entry sharing that prefix is a candidate, in
  configuration order;
- with callee matching and ``strip``, the matched prefix is removed from the
  number to dial (``001`` + ``13800138000`` -> ``13800138000``);
- ``require_match`` (per line and per group modes) turns "no prefix configured"
  and "nothing matches" into 603; otherwise (single server, trunk) entries with no
  prefixes are a catch-all used when no prefix matches;
- prefix matching ``off`` makes every entry a candidate.
"""

from __future__ import annotations

from typing import Iterable

import attrs

from goip_tw.config.sections.voip import VoipConfig, line_accounts

MATCH_ON = ("off", "caller", "callee")


def parse_prefixes(text: str) -> tuple[str, ...]:
    """``"00,13, 15"`` -> ``("00", "13", "15")``; empty items are dropped."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


@attrs.frozen
class RouteEntry:
    """One line (per line mode) or one group of lines with its gateway prefixes."""

    name: str
    lines: tuple[int, ...]
    prefixes: tuple[str, ...] = ()


@attrs.frozen
class Route:
    """Where a VoIP->GSM call may go.

    ``lines``: candidate line numbers in preference order; ``number``: the callee
    number to dial (prefix stripped when configured); ``prefix``: the prefix that
    matched (``""`` for a catch-all or with matching off); ``entries``: names of
    the matching entries (for logs and the CDR).
    """

    lines: tuple[int, ...]
    number: str
    prefix: str
    entries: tuple[str, ...]


@attrs.frozen
class PrefixRouter:
    entries: tuple[RouteEntry, ...]
    match_on: str = attrs.field(default="callee",
                                validator=attrs.validators.in_(MATCH_ON))
    strip: bool = False
    require_match: bool = False

    def route(self, caller: str, callee: str) -> Route | None:
        """Candidate lines for a call from ``caller`` to ``callee``, or None (603)."""
        if self.match_on == "off":
            return self._route_all(callee)
        subject = caller if self.match_on == "caller" else callee
        best = -1
        matched: list[RouteEntry] = []
        for entry in self.entries:
            for prefix in entry.prefixes:
                if subject.startswith(prefix):
                    if len(prefix) > best:
                        best, matched = len(prefix), [entry]
                    elif len(prefix) == best and entry not in matched:
                        matched.append(entry)
        if matched:
            prefix = subject[:best]
            number = callee
            if self.strip and self.match_on == "callee":
                number = callee[best:]
            return Route(lines=_union(e.lines for e in matched), number=number,
                         prefix=prefix, entries=tuple(e.name for e in matched))
        if self.require_match:
            return None
        catch_all = [e for e in self.entries if not e.prefixes]
        if not catch_all:
            return None
        return Route(lines=_union(e.lines for e in catch_all), number=callee, prefix="",
                     entries=tuple(e.name for e in catch_all))

    def _route_all(self, callee: str) -> Route | None:
        lines = _union(e.lines for e in self.entries)
        if not lines:
            return None
        return Route(lines=lines, number=callee, prefix="",
                     entries=tuple(e.name for e in self.entries))

    def entry_for_line(self, line: int) -> RouteEntry | None:
        for entry in self.entries:
            if line in entry.lines:
                return entry
        return None

    @classmethod
    def from_config(cls, voip: VoipConfig, line_count: int) -> "PrefixRouter":
        """The router for the configured mode and ``line_count`` lines.

        single/trunk: one entry per line with that line's prefixes (``voip.lines``),
        lines without prefixes being the catch-all; per_line: the same but a match
        is required; per_group: one entry per group with the group account's
        prefixes, a match required.
        """
        if voip.mode == "per_group":
            entries = tuple(
                RouteEntry(name=group.name or f"group{i + 1}",
                           lines=tuple(n for n in group.lines if 1 <= n <= line_count),
                           prefixes=parse_prefixes(group.account.prefixes))
                for i, group in enumerate(voip.groups))
        else:
            accounts = line_accounts(voip, line_count)
            entries = tuple(
                RouteEntry(name=f"line{n}", lines=(n,),
                           prefixes=parse_prefixes(accounts[n - 1].prefixes))
                for n in range(1, line_count + 1))
        return cls(entries=entries, match_on=voip.prefix_match, strip=voip.strip_prefix,
                   require_match=voip.mode in ("per_line", "per_group"))


def _union(groups: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
    out: list[int] = []
    for lines in groups:
        for n in lines:
            if n not in out:
                out.append(n)
    return tuple(out)
