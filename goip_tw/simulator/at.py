"""AT command line syntax, result codes and the handler registry.

Syntax follows ITU-T V.250 section 5 (command line ``AT<cmd>[;<cmd>...]<CR>``,
basic commands such as ``E1`` and ``&F``, extended ``+NAME``, ``+NAME?``,
``+NAME=?`` and ``+NAME=<args>``).  Error reporting follows 3GPP TS 27.007
section 9.2 (``+CME ERROR``, mode set by ``AT+CMEE``) and TS 27.005 section
3.2.5 (``+CMS ERROR`` for SMS commands).

Handlers live in the ``at_*`` modules, grouped by command family, and register
themselves with :func:`command`.  A handler gets ``(module, cmd)`` and returns
information lines, raises :class:`AtError`, or returns :data:`PENDING` when it
will finish the response itself (the ``> `` prompt of ``AT+CMGS``).
"""

from __future__ import annotations

import attrs

PENDING = object()

#: TS 27.007 9.2.1 numeric and verbose +CME ERROR values we use.
CME_TEXT = {
    0: "phone failure",
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    30: "no network service",
    50: "incorrect parameters",
    100: "unknown",
    262: "SIM blocked",
}

#: TS 27.005 3.2.5 +CMS ERROR values we use.
CMS_TEXT = {
    300: "ME failure",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    500: "unknown error",
}

#: V.250 numeric result codes (ATV0) for the verbose ones.
NUMERIC = {
    "OK": "0",
    "CONNECT": "1",
    "RING": "2",
    "NO CARRIER": "3",
    "ERROR": "4",
    "NO DIALTONE": "6",
    "BUSY": "7",
    "NO ANSWER": "8",
}


class AtError(Exception):
    """A command failed: plain ``ERROR``, ``+CME ERROR`` or ``+CMS ERROR``."""

    def __init__(self, code: int | None = None, kind: str = "cme"):
        super().__init__(code, kind)
        self.code = code
        self.kind = kind

    def render(self, cmee: int) -> str:
        if self.code is None or cmee == 0:
            return "ERROR"
        if self.kind == "cms":
            return f"+CMS ERROR: {self.code}" if cmee == 1 else (
                f"+CMS ERROR: {CMS_TEXT.get(self.code, 'unknown error')}"
            )
        if cmee == 1:
            return f"+CME ERROR: {self.code}"
        return f"+CME ERROR: {CME_TEXT.get(self.code, 'unknown')}"


def cms(code: int) -> AtError:
    return AtError(code, "cms")


@attrs.frozen
class AtCommand:
    """One command of a command line.

    ``kind`` is ``exec`` (``+CSQ``, ``I``), ``set`` (``+CMGF=0``, ``E1``),
    ``read`` (``+CMGF?``) or ``test`` (``+CMGF=?``).
    """

    name: str
    kind: str
    args: str = ""

    def params(self) -> list[str | None]:
        """Comma-separated parameters; quotes removed, empty ones ``None``."""
        return split_params(self.args)

    def int_param(self, index: int, default: int | None = None, *, lo=None, hi=None):
        values = self.params()
        raw = values[index] if index < len(values) else None
        if raw is None or raw == "":
            if default is None:
                raise AtError(50)
            return default
        try:
            value = int(raw)
        except ValueError:
            raise AtError(50) from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise AtError(50)
        return value

    def str_param(self, index: int, default: str | None = None) -> str:
        values = self.params()
        raw = values[index] if index < len(values) else None
        if raw is None:
            if default is None:
                raise AtError(50)
            return default
        return raw


def split_params(text: str) -> list[str | None]:
    if text == "":
        return []
    out: list[str | None] = []
    cur: list[str] = []
    quoted = was_quoted = False
    for ch in text + ",":
        if ch == '"':
            quoted = not quoted
            was_quoted = True
        elif ch == "," and not quoted:
            value = "".join(cur)
            if was_quoted:
                out.append(value)
            else:
                value = value.strip()
                out.append(value if value else None)
            cur, was_quoted = [], False
        else:
            cur.append(ch)
    return out


class ParseError(Exception):
    pass


def parse_line(line: str) -> list[AtCommand]:
    """Split a command line (without the ``AT`` prefix) into commands.

    ``D`` takes the rest of the line, so ``ATD+123;`` stays one command and its
    ``;`` marks a voice call (V.250 6.3.1)."""
    body = line
    commands: list[AtCommand] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch in " ;":
            i += 1
            continue
        up = ch.upper()
        if up == "D":
            commands.append(AtCommand("D", "set", body[i + 1:].strip()))
            break
        if ch in "+$^%#*":
            j = i + 1
            quoted = False
            while j < n and (quoted or body[j] != ";"):
                if body[j] == '"':
                    quoted = not quoted
                j += 1
            commands.append(_extended(body[i:j]))
            i = j + 1
            continue
        if ch == "&":
            name = "&" + body[i + 1:i + 2].upper()
            i += 2
        elif up == "S":
            j = i + 1
            while j < n and body[j].isdigit():
                j += 1
            name = "S" + body[i + 1:j]
            i = j
            if i < n and body[i] == "?":
                commands.append(AtCommand(name, "read"))
                i += 1
                continue
            if i < n and body[i] == "=":
                j = i + 1
                while j < n and body[j].isdigit():
                    j += 1
                commands.append(AtCommand(name, "set", body[i + 1:j]))
                i = j
                continue
            commands.append(AtCommand(name, "read"))
            continue
        elif up.isalpha():
            name = up
            i += 1
        else:
            raise ParseError(line)
        j = i
        while j < n and body[j].isdigit():
            j += 1
        digits = body[i:j]
        i = j
        commands.append(AtCommand(name, "set" if digits else "exec", digits))
    return commands


def _extended(text: str) -> AtCommand:
    name_end = len(text)
    for k, c in enumerate(text):
        if c in "=?" and k > 0:
            name_end = k
            break
    name = text[:name_end].upper().strip()
    rest = text[name_end:]
    if rest == "":
        return AtCommand(name, "exec")
    if rest == "?":
        return AtCommand(name, "read")
    if rest == "=?":
        return AtCommand(name, "test")
    if rest.startswith("="):
        return AtCommand(name, "set", rest[1:])
    raise ParseError(text)


#: name -> (handler, dialects or None for all)
REGISTRY: dict[str, tuple] = {}


def command(*names: str, dialects: tuple[str, ...] | None = None):
    """Register a handler for one or more command names."""

    def register(func):
        for name in names:
            REGISTRY[name.upper()] = (func, dialects)
        return func

    return register


def lookup(name: str, dialect: str):
    entry = REGISTRY.get(name.upper())
    if entry is None:
        return None
    func, dialects = entry
    if dialects is not None and dialect not in dialects:
        return None
    return func


def flag_setting(module, cmd, attr: str, hi: int = 1):
    """The common ``+X=<n>`` / ``+X?`` / ``+X=?`` shape over one setting."""
    if cmd.kind == "set":
        setattr(module.settings, attr, cmd.int_param(0, lo=0, hi=hi))
        return []
    if cmd.kind == "read":
        return [f"{cmd.name}: {int(getattr(module.settings, attr))}"]
    if cmd.kind == "test":
        return [f"{cmd.name}: (0-{hi})"]
    raise AtError(50)


def quote(text: str) -> str:
    return f'"{text}"'
