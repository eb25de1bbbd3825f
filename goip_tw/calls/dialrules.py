"""Dial rules (SPEC F-1701, manual Appendix E "拨号规则").

A rule list rewrites a number's prefix; it never selects a line (F-411 does).
Used for outgoing calls (F-452), second-stage numbers and caller-ID prefixes of
incoming calls (F-464) and SMS recipients (F-493), so this module is pure: no
Twisted, no I/O, values only.

Syntax, as the manual describes it::

    rules     := rule ("|" rule)*          at most 140 characters
    rule      := condition ":" action
    condition := (digit | "X" | "x" | "[" digit "-" digit "]" | "+" | "*" | "#")*
    action    := (("-" | "+") operand)*

- A condition matches when the number *starts* with it; ``X``/``x`` is any digit
  0-9, ``[3-8]`` one digit in that range; an empty condition matches every number.
- ``-abc`` deletes the prefix ``abc``; ``+abc`` prepends ``abc``. Operations run
  left to right. The character right after an operator is always literal, so in a
  run of two operators the second is data: ``-+86`` deletes "+86", ``-0++86``
  deletes "0" then prepends "+86".
- Rules are tried left to right; the first match wins.
- Strict mode ("严格的拨号规则"): a number may be dialled only if it fully matches a
  condition, length included; the first fully matching rule is applied. An empty
  condition still matches everything (it has no length to compare: our reading,
  the manual is silent).

A ``-abc`` whose prefix is not present (possible after an earlier ``+``) deletes
nothing: the manual only shows deletions of what the condition matched.
"""

from __future__ import annotations

import re

import attrs

MAX_RULES_LENGTH = 140

_LITERALS = frozenset("0123456789+*#")
_RANGE = re.compile(r"\[(\d)-(\d)\]")


class DialRuleError(ValueError):
    """A rule list that cannot be parsed; ``position`` is a 0-based index in the text."""

    def __init__(self, message: str, text: str, position: int | None = None):
        where = f" at character {position + 1}" if position is not None else ""
        super().__init__(f"dial rules {text!r}: {message}{where}")
        self.reason = message
        self.text = text
        self.position = position


class NumberRejected(ValueError):
    """Strict dial rules refuse a number that fully matches no condition (F-452)."""

    def __init__(self, number: str):
        super().__init__(f"number {number!r} matches no strict dial rule")
        self.number = number


@attrs.frozen
class Digit:
    """One condition position: the set of characters it accepts."""

    low: str
    high: str

    def accepts(self, char: str) -> bool:
        return self.low <= char <= self.high


@attrs.frozen
class Operation:
    """``kind`` is ``"-"`` (delete prefix) or ``"+"`` (prepend)."""

    kind: str
    operand: str

    def apply(self, number: str) -> str:
        if self.kind == "+":
            return self.operand + number
        if number.startswith(self.operand):
            return number[len(self.operand):]
        return number


@attrs.frozen
class DialRule:
    condition: tuple[Digit, ...]
    operations: tuple[Operation, ...]
    text: str

    def matches(self, number: str, strict: bool = False) -> bool:
        if not self.condition:
            return True
        if len(number) < len(self.condition):
            return False
        if strict and len(number) != len(self.condition):
            return False
        return all(d.accepts(c) for d, c in zip(self.condition, number))

    def apply(self, number: str) -> str:
        for op in self.operations:
            number = op.apply(number)
        return number


@attrs.frozen
class DialResult:
    """What a rule list did to a number; ``rule`` is None when nothing matched."""

    original: str
    number: str
    rule: DialRule | None
    allowed: bool = True


@attrs.frozen
class DialRules:
    rules: tuple[DialRule, ...] = ()
    text: str = ""

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, number: str, strict: bool = False) -> DialResult:
        for rule in self.rules:
            if rule.matches(number, strict):
                return DialResult(number, rule.apply(number), rule)
        return DialResult(number, number, None, allowed=not (strict and self.rules))

    def rewrite(self, number: str, strict: bool = False) -> str:
        """The rewritten number; raises NumberRejected in strict mode without a match.

        Strict mode with no rules at all allows everything: an empty field means
        "no rules configured", not "dial nothing".
        """
        result = self.match(number, strict)
        if not result.allowed:
            raise NumberRejected(number)
        return result.number


def _parse_condition(text: str, start: int, end: int, whole: str) -> tuple[Digit, ...]:
    digits: list[Digit] = []
    i = start
    while i < end:
        char = whole[i]
        if char in "Xx":
            digits.append(Digit("0", "9"))
            i += 1
        elif char == "[":
            m = _RANGE.match(whole, i, end)
            if m is None:
                raise DialRuleError("a range must look like [3-8]", whole, i)
            low, high = m.group(1), m.group(2)
            if low > high:
                raise DialRuleError(f"empty range [{low}-{high}]", whole, i)
            digits.append(Digit(low, high))
            i = m.end()
        elif char in _LITERALS:
            digits.append(Digit(char, char))
            i += 1
        else:
            raise DialRuleError(f"unexpected {char!r} in a condition", whole, i)
    return tuple(digits)


def _parse_action(start: int, end: int, whole: str) -> tuple[Operation, ...]:
    ops: list[Operation] = []
    i = start
    while i < end:
        kind = whole[i]
        if kind not in "+-":
            raise DialRuleError(f"an action starts with '+' or '-', not {kind!r}", whole, i)
        i += 1
        if i >= end:
            raise DialRuleError(f"'{kind}' needs characters after it", whole, i - 1)
        operand = [whole[i]]  # right after an operator: always literal
        if operand[0] not in _LITERALS and operand[0] != "-":
            raise DialRuleError(f"unexpected {whole[i]!r} in an action", whole, i)
        i += 1
        while i < end and whole[i] not in "+-":
            if whole[i] not in _LITERALS:
                raise DialRuleError(f"unexpected {whole[i]!r} in an action", whole, i)
            operand.append(whole[i])
            i += 1
        ops.append(Operation(kind, "".join(operand)))
    return tuple(ops)


def parse_dial_rules(text: str | None) -> DialRules:
    """Parse a rule list; ``""``/None is "no rules". Raises DialRuleError."""
    if text is None:
        return DialRules()
    if not isinstance(text, str):
        raise DialRuleError("must be text", repr(text))
    stripped = text.strip()
    if len(stripped) > MAX_RULES_LENGTH:
        raise DialRuleError(
            f"{len(stripped)} characters, at most {MAX_RULES_LENGTH} allowed", stripped)
    if not stripped:
        return DialRules()
    rules: list[DialRule] = []
    pos = 0
    for segment in stripped.split("|"):
        start, end = pos, pos + len(segment)
        pos = end + 1
        if not segment.strip():
            raise DialRuleError("empty rule between '|'", stripped, start)
        colon = stripped.find(":", start, end)
        if colon < 0:
            raise DialRuleError("a rule needs ':' between condition and action",
                                stripped, start)
        if stripped.find(":", colon + 1, end) >= 0:
            raise DialRuleError("more than one ':' in a rule", stripped,
                                stripped.find(":", colon + 1, end))
        condition = _parse_condition(stripped, start, colon, stripped)
        operations = _parse_action(colon + 1, end, stripped)
        rules.append(DialRule(condition, operations, segment))
    return DialRules(tuple(rules), stripped)


def validate_dial_rules(text: str | None) -> str | None:
    """Config validator helper: None when valid, else the error sentence."""
    try:
        parse_dial_rules(text)
    except DialRuleError as e:
        return str(e)
    return None


def rewrite(rules: str | DialRules, number: str, strict: bool = False) -> str:
    """One-shot helper: ``rewrite("86:-86", "8613012345678") == "13012345678"``."""
    if isinstance(rules, str):
        rules = parse_dial_rules(rules)
    return rules.rewrite(number, strict)
