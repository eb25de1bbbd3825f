"""Fault injection for a simulated module.

Each fault imitates something real modules do in the field: hang (stop
answering), answer late, spit line noise after a brown-out, interleave a URC
with a response (TS 27.007 section 5.1 says they should not, firmware does
anyway), answer ``+CME``/``+CMS ERROR`` to a command, or fill the SIM store.
Faults change what goes over the pty; they never raise inside the simulator.
"""

from __future__ import annotations

import random

import attrs

KINDS = ("silent", "slow", "garbage", "urc_mid", "error", "store_full", "clear")


@attrs.define
class ErrorRule:
    prefix: str
    reply: str
    remaining: int


@attrs.define
class Faults:
    silent: bool = False
    delay: float = 0.0
    garbage_next: int = 0
    garbage_len: int = 16
    urc_mid_next: int = 0
    urc_mid_text: str = "+CSQ: 20,99"
    errors: list = attrs.field(factory=list)
    rng: random.Random = attrs.field(factory=lambda: random.Random(7))

    def clear(self) -> None:
        self.silent = False
        self.delay = 0.0
        self.garbage_next = 0
        self.urc_mid_next = 0
        self.errors.clear()

    def error_for(self, name: str) -> str | None:
        """Reply text to use instead of running command ``name``, if any."""
        for rule in self.errors:
            if name.upper().startswith(rule.prefix.upper()) and rule.remaining != 0:
                rule.remaining -= 1
                reply = rule.reply
                self.errors = [r for r in self.errors if r.remaining != 0]
                return reply
        return None

    def take_garbage(self) -> bytes:
        if self.garbage_next <= 0:
            return b""
        self.garbage_next -= 1
        return bytes(self.rng.randrange(256) for _ in range(self.garbage_len))

    def take_urc_mid(self) -> str | None:
        if self.urc_mid_next <= 0:
            return None
        self.urc_mid_next -= 1
        return self.urc_mid_text

    def apply(self, kind: str, **params) -> None:
        """Set a fault by name; unknown names or bad values raise ValueError."""
        if kind == "silent":
            self.silent = bool(params.get("on", True))
        elif kind == "slow":
            delay = float(params.get("delay", 5.0))
            if not 0 <= delay <= 600:
                raise ValueError("delay must be 0..600 s")
            self.delay = delay
        elif kind == "garbage":
            self.garbage_next = int(params.get("count", 1))
            self.garbage_len = max(1, min(4096, int(params.get("length", 16))))
        elif kind == "urc_mid":
            self.urc_mid_next = int(params.get("count", 1))
            self.urc_mid_text = str(params.get("text", self.urc_mid_text))
        elif kind == "error":  # count -1: until cleared
            code = params.get("reply") or "+CME ERROR: 100"
            self.errors.append(
                ErrorRule(str(params.get("command", "")), str(code), int(params.get("count", 1)))
            )
        elif kind == "clear":
            self.clear()
        else:
            raise ValueError(f"unknown fault kind {kind!r}")

    def describe(self) -> dict:
        return {
            "silent": self.silent,
            "delay": self.delay,
            "garbage_next": self.garbage_next,
            "urc_mid_next": self.urc_mid_next,
            "errors": [attrs.asdict(r) for r in self.errors],
        }
