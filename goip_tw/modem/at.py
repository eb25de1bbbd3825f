"""AT command engine: one command in flight per port, a queue, URCs recognised anywhere.

Wire rules follow 3GPP TS 27.007 §4-5 (command line, final and intermediate result
codes, ``+CME ERROR``) and TS 27.005 §3 (``+CMS ERROR``, the ``> `` prompt of
AT+CMGS in PDU mode terminated by Ctrl-Z, ESC to abort).

The engine is a plain :class:`twisted.internet.protocol.Protocol`; it runs the same
over ``twisted.internet.serialport.SerialPort`` on a real tty, on a simulator pty, or
on a ``StringTransport`` in unit tests.  Time comes from the ``clock`` it is given.

Classification of an incoming line while a command is in flight:

1. the second line of a two-line URC (``+CMT``/``+CDS``/``+CBM``: the PDU);
2. the echo of the command or of the PDU payload: dropped;
3. a final result code for that command (``OK``, ``ERROR``, ``+CME/+CMS ERROR``;
   for ATD/ATA also ``NO CARRIER``, ``BUSY``, ``NO ANSWER``, ``NO DIALTONE``, ``CONNECT``);
4. a line starting with the command's own response prefix (``AT+CREG?`` → ``+CREG:``):
   a response line even though ``+CREG:`` can also be a URC;
5. a known URC prefix: dispatched to the URC observers;
6. anything else: an intermediate response line (IMEI, manufacturer, PDU of +CMGL).

With nothing in flight, URCs are dispatched and other lines are counted as garbage.
Every port opening starts with :meth:`AtEngine.resync` (ESC, settle, ``AT`` probe), so a
module a dead gateway left at the ``> `` prompt aborts that message instead of sending it.

Nothing untrusted is ever pasted into a command: :func:`check_number` admits only
``[+0-9*#]``; texts travel only as PDU hex through :meth:`AtEngine.send`'s payload.
"""

from __future__ import annotations

import collections
import re
from typing import Callable

import attrs
from twisted.internet import defer, protocol
from twisted.logger import Logger

log = Logger()

#: Seconds per command class (overridable per engine and per call).  Network scans and
#: SMS submission are slow by nature (TS 27.005 allows the network minutes).
DEFAULT_TIMEOUTS = {
    "quick": 2.0,
    "default": 5.0,
    "sim": 10.0,
    "call": 45.0,
    "ussd": 30.0,
    "sms": 60.0,
    "reset": 30.0,
    "data": 120.0,
    "network": 180.0,
}

#: URC prefixes from TS 27.007 / 27.005 and the vendor manuals the drivers cite.
#: The value is True when the URC carries a second line (the PDU).
BASE_URCS: dict[str, bool] = {
    "RING": False, "+CRING": False, "+CLIP": False, "+CCWA": False, "+CSSI": False,
    "+CSSU": False, "+CUSD": False, "+CREG": False, "+CGREG": False, "+CEREG": False,
    "+CIEV": False, "+CMTI": False, "+CDSI": False, "+CMT": True, "+CDS": True,
    "+CBM": True, "+CPIN": False, "+CLCC": False, "+CTZV": False, "+CTZE": False,
    "+CFUN": False, "NO CARRIER": False, "BUSY": False, "NO ANSWER": False,
    "RDY": False,
}

_FINAL_OK = ("OK",)
#: responses whose quoted text may contain line breaks (27.007 §7.15 +CUSD <str>)
_MULTILINE = (b"+CUSD:",)
_CALL_FINALS = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
_NUMBER_RE = re.compile(r"[+]?[0-9*#]{1,40}\Z")
_HEX_RE = re.compile(r"[0-9A-Fa-f]*\Z")
_SAFE_STR_RE = re.compile(r"[A-Za-z0-9 ._:/+*#@,=-]{0,64}\Z")


class BadArgument(ValueError):
    """A value would have had to be pasted into a command and is not safe."""


def check_number(number: str, field: str = "number") -> str:
    """Return ``number`` if it is ``[+0-9*#]`` only (what ATD/+CLCK accept), else raise."""
    if not isinstance(number, str) or not _NUMBER_RE.match(number):
        raise BadArgument(f"{field}: {number!r} is not a dialable number ([+0-9*#], max 40)")
    return number


def check_string(value: str, field: str = "value") -> str:
    """A conservative whitelist for quoted parameters (APN, operator code, PIN)."""
    if not isinstance(value, str) or not _SAFE_STR_RE.match(value):
        raise BadArgument(f"{field}: {value!r} contains characters not allowed in a command")
    return value


# --------------------------------------------------------------------------- results

@attrs.frozen
class Response:
    command: str
    lines: tuple[str, ...]
    result: str = "OK"

    def values(self, prefix: str) -> list[str]:
        """Payloads of the lines that start with ``prefix`` (``"+CSQ"`` → ``"20,99"``)."""
        head = prefix if prefix.endswith(":") else prefix + ":"
        return [line[len(head):].strip() for line in self.lines if line.startswith(head)]

    def value(self, prefix: str) -> str | None:
        vals = self.values(prefix)
        return vals[0] if vals else None

    def plain(self) -> list[str]:
        """Lines that carry no ``+X:`` / ``^X:`` prefix (IMEI, CGMI text...)."""
        return [line for line in self.lines if not re.match(r"[+^$][A-Z0-9]+:", line)]


class AtError(Exception):
    """A command did not end in OK; ``result`` is the final line."""

    def __init__(self, command: str, result: str, lines: tuple[str, ...] = ()):
        super().__init__(f"{command}: {result}")
        self.command = command
        self.result = result
        self.lines = lines


class CommandError(AtError):
    """Plain ``ERROR`` (no detail; the module may have +CMEE=0)."""


class CmeError(AtError):
    """``+CME ERROR: <n|text>`` (TS 27.007 §9.2): mobile equipment / SIM errors."""

    def __init__(self, command, result, lines=()):
        super().__init__(command, result, lines)
        self.code, self.text = _error_detail(result)


class CmsError(AtError):
    """``+CMS ERROR: <n|text>`` (TS 27.005 §3.2.5): message service errors."""

    def __init__(self, command, result, lines=()):
        super().__init__(command, result, lines)
        self.code, self.text = _error_detail(result)


class CallFailed(AtError):
    """ATD/ATA ended with NO CARRIER / BUSY / NO ANSWER / NO DIALTONE."""


class AtTimeout(AtError):
    """No final result within the command class's time."""


class PortClosed(AtError):
    """The port went away with the command queued or in flight."""


def _error_detail(line: str) -> tuple[int | None, str]:
    detail = line.split(":", 1)[1].strip() if ":" in line else ""
    return (int(detail), "") if detail.isdigit() else (None, detail)


@attrs.frozen
class Urc:
    """One unsolicited result code: ``name`` (``+CMTI``, ``RING``, ``^CEND``), the text
    after the colon, and for two-line URCs the second line (``pdu``)."""
    name: str
    value: str = ""
    pdu: str | None = None


# --------------------------------------------------------------------------- engine

@attrs.define(eq=False)
class _Command:
    text: str
    deferred: defer.Deferred
    timeout: float
    payload: str | None
    prefix: str | None
    is_call: bool
    lines: list = attrs.Factory(list)
    timer: object = None
    prompted: bool = False
    finished: bool = False
    connect_text: str | None = None


def _response_prefix(command: str) -> str | None:
    m = re.match(r"AT([+^$][A-Za-z0-9]+)", command, re.IGNORECASE)
    return m.group(1).upper() + ":" if m else None


class AtEngine(protocol.Protocol):
    """Serialises commands on one AT port and dispatches URCs.

    ``send()`` returns a Deferred that fires with a :class:`Response` or fails with an
    :class:`AtError` subclass.  URC observers get :class:`Urc` objects.  A command
    that timed out stays the "owner" of the port for ``late_grace`` seconds so that a
    late final result is swallowed instead of being given to the next command.
    """

    max_line = 4096
    late_grace = 1.0
    #: seconds to let a module answer the ESC of :meth:`resync` before the probe
    settle = 0.2

    def __init__(self, clock, *, timeouts: dict | None = None, name: str = "modem"):
        self.clock = clock
        self.name = name
        timeouts = dict(timeouts or {})
        self.late_grace = float(timeouts.pop("late_grace", self.late_grace))
        self.settle = float(timeouts.pop("settle", self.settle))
        self.timeouts = dict(DEFAULT_TIMEOUTS, **timeouts)
        self.timeouts_in_row = 0
        self.urcs: dict[str, bool] = dict(BASE_URCS)
        self._observers: list[Callable[[Urc], None]] = []
        self._close_observers: list[Callable[[object], None]] = []
        self._queue: collections.deque[_Command] = collections.deque()
        self._current: _Command | None = None
        self._zombie_timer = None
        self._hold_timer = None
        self._pdu_urc: tuple[str, str] | None = None
        self._buf = b""
        self._quoted: bytes | None = None
        self.connected = False
        self.garbage = 0
        self.last_rx = None

    # -- observers
    def add_urc_observer(self, fn: Callable[[Urc], None]) -> None:
        self._observers.append(fn)

    def remove_urc_observer(self, fn) -> None:
        if fn in self._observers:
            self._observers.remove(fn)

    def add_close_observer(self, fn) -> None:
        self._close_observers.append(fn)

    def register_urcs(self, names: dict[str, bool]) -> None:
        """Drivers add their vendor URCs (``{"^CEND": False}``)."""
        self.urcs.update(names)

    # -- sending
    def send(self, command: str, *, kind: str = "default", timeout: float | None = None,
             payload: str | None = None, connect_text: str | None = None) -> defer.Deferred:
        """Queue ``command`` (without CR).  ``payload`` (hex only) is written after the
        ``> `` prompt, followed by Ctrl-Z (TS 27.005 §3.5.1).  ``connect_text``
        (printable ASCII, already validated by the caller) is written after an
        intermediate ``CONNECT`` (Quectel AT+QHTTPURL style), then OK is awaited."""
        if connect_text is not None and any(not (0x20 <= ord(c) < 0x7F) for c in connect_text):
            raise BadArgument("connect_text must be printable ASCII")
        if not isinstance(command, str) or not command[:2].upper() == "AT":
            raise BadArgument(f"command must start with AT: {command!r}")
        if any(not (0x20 <= ord(c) < 0x7F) for c in command) or len(command) > 512:
            raise BadArgument(f"command contains control or non-ASCII characters: {command!r}")
        if payload is not None and not _HEX_RE.match(payload):
            raise BadArgument("payload must be hex (PDU mode only)")
        if not self.connected:
            return defer.fail(PortClosed(command, "port not open"))
        cmd = _Command(
            text=command, deferred=defer.Deferred(self._cancel), payload=payload,
            timeout=timeout if timeout is not None else self.timeouts.get(kind, self.timeouts["default"]),
            prefix=_response_prefix(command),
            is_call=bool(re.match(r"AT(D|A\Z|O\Z)", command, re.IGNORECASE)),
            connect_text=connect_text)
        self._queue.append(cmd)
        self._pump()
        return cmd.deferred

    def _cancel(self, d):
        for cmd in list(self._queue):
            if cmd.deferred is d:
                self._queue.remove(cmd)
                return
        if self._current is not None and self._current.deferred is d:
            self._current.finished = True  # stays in flight; its lines are swallowed

    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    def resync(self, probes: int = 3) -> defer.Deferred:
        """Bring a module in an unknown input state back to command mode.

        A gateway killed between ``AT+CMGS`` and Ctrl-Z leaves the module at the
        ``> `` prompt, taking every later byte as message text.  ESC aborts that
        input without sending (TS 27.005 §3.5.1); on a module already in command
        mode it is an ignored character.  Commands queued meanwhile wait ``settle``
        seconds, so that the module's answer to the abort (or the late result of a
        command cut off by the crash) goes by as unsolicited garbage instead of
        answering our first command; then up to ``probes`` ``AT`` probes.  Fires
        True once a probe got OK, False if none did (the caller's watchdog decides).
        Nothing is ever terminated with Ctrl-Z here, so an abandoned SMS never leaves.
        """
        if not self.connected:
            return defer.fail(PortClosed("ESC", "port not open"))
        log.debug("{name} >> ESC (resync)", name=self.name)
        self.transport.write(b"\x1b")
        if self._hold_timer is None or not self._hold_timer.active():
            self._hold_timer = self.clock.callLater(self.settle, self._end_hold)

        @defer.inlineCallbacks
        def probe():
            for _ in range(max(1, probes)):
                try:
                    yield self.send("AT", kind="quick")
                    return True
                except PortClosed:
                    raise
                except AtError as exc:
                    log.info("{name}: AT probe after ESC: {result}", name=self.name,
                             result=exc.result)
            return False
        return probe()

    def _end_hold(self):
        self._hold_timer = None
        # a partial line (the echoed "> " and PDU text) is not the start of an answer
        self._buf = b""
        self._pdu_urc = None
        self._quoted = None
        self._pump()

    def _pump(self):
        if self._current is not None or self._zombie_timer is not None or not self._queue:
            return
        if self._hold_timer is not None:
            return
        if not self.connected:
            return
        cmd = self._current = self._queue.popleft()
        cmd.timer = self.clock.callLater(cmd.timeout, self._timed_out, cmd)
        log.debug("{name} >> {cmd}", name=self.name, cmd=cmd.text)
        self.transport.write(cmd.text.encode("ascii") + b"\r")

    def _finish(self, cmd: _Command, result=None, failure: AtError | None = None):
        if cmd.timer is not None and cmd.timer.active():
            cmd.timer.cancel()
        if self._current is cmd:
            self._current = None
        already = cmd.finished
        cmd.finished = True
        if not already:
            if failure is not None:
                cmd.deferred.errback(failure)
            else:
                cmd.deferred.callback(result)
        self._pump()

    def _timed_out(self, cmd: _Command):
        cmd.timer = None
        self.timeouts_in_row += 1
        log.warn("{name}: {cmd} timed out after {t}s", name=self.name, cmd=cmd.text, t=cmd.timeout)
        if cmd.payload is not None and self.connected:
            self.transport.write(b"\x1b")  # abort pending SMS input
        # keep the port reserved briefly so a late final result is not misattributed
        self._current = cmd
        self._zombie_timer = self.clock.callLater(self.late_grace, self._end_zombie)
        if not cmd.finished:
            cmd.finished = True
            cmd.deferred.errback(AtTimeout(cmd.text, "timeout", tuple(cmd.lines)))

    def _end_zombie(self):
        self._zombie_timer = None
        if self._current is not None and self._current.finished:
            self._current = None
        self._pump()

    # -- receiving
    def connectionMade(self):
        self.connected = True
        self._pump()

    def dataReceived(self, data: bytes):
        self.last_rx = self.clock.seconds()
        self._buf += data
        while True:
            m = re.search(rb"[\r\n]", self._buf)
            if m is None:
                break
            raw, self._buf = self._buf[:m.start()], self._buf[m.end():]
            if self._quoted is not None:
                if not raw:
                    continue  # the \n of a \r\n inside the text
                raw = self._quoted + b"\n" + raw
                self._quoted = None
            if raw.startswith(_MULTILINE) and raw.count(b'"') % 2 == 1 \
                    and len(raw) < self.max_line:
                self._quoted = raw  # a quoted text with line breaks (USSD menus)
                continue
            if raw:
                self._line(raw.decode("latin-1"))
        if len(self._buf) > self.max_line:
            log.warn("{name}: dropping {n} bytes without a line end", name=self.name, n=len(self._buf))
            self.garbage += 1
            self._buf = b""
        if self._buf.startswith(b">") and self._prompt():
            self._buf = self._buf[1:].lstrip(b" ")

    def _prompt(self) -> bool:
        """The ``> `` prompt: write the PDU and Ctrl-Z (TS 27.005 §3.5.1)."""
        cur = self._current
        if cur is None or cur.finished or cur.payload is None or cur.prompted:
            return False
        cur.prompted = True
        self.transport.write(cur.payload.encode("ascii") + b"\x1a")
        return True

    def _line(self, line: str):
        line = line.strip()
        if not line:
            return
        if self._pdu_urc is not None:
            name, value = self._pdu_urc
            self._pdu_urc = None
            self._dispatch(Urc(name, value, line))
            return
        cur = self._current
        if line.startswith(">") and self._prompt():
            return
        if cur is not None:
            if line.upper() == cur.text.upper() or (cur.payload and line.strip("\x1a> ") == cur.payload):
                return
            if cur.connect_text is not None and line.upper().startswith("CONNECT"):
                self.transport.write(cur.connect_text.encode("ascii"))
                cur.connect_text = None
                return
            final = self._final(cur, line)
            if final is not None:
                if cur.finished:  # late result of a timed-out / cancelled command
                    if cur.timer is not None and cur.timer.active():
                        cur.timer.cancel()
                    if self._zombie_timer is not None and self._zombie_timer.active():
                        self._zombie_timer.cancel()
                        self._zombie_timer = None
                    self._current = None
                    self._pump()
                    return
                ok, exc = final
                if ok:
                    self._finish(cur, Response(cur.text, tuple(cur.lines), line))
                else:
                    self._finish(cur, failure=exc(cur.text, line, tuple(cur.lines)))
                return
            if cur.prefix and line.upper().startswith(cur.prefix):
                cur.lines.append(line)
                return
            if self._urc(line):
                return
            cur.lines.append(line)
            return
        if line.startswith(">"):
            return
        if not self._urc(line):
            self.garbage += 1
            log.debug("{name}: unexpected line {line!r}", name=self.name, line=line)

    def _final(self, cur: _Command, line: str):
        result = self._classify_final(cur, line)
        if result is not None:
            self.timeouts_in_row = 0
        return result

    def _classify_final(self, cur: _Command, line: str):
        up = line.upper()
        if up == "OK":
            return True, None
        if up == "ERROR":
            return False, CommandError
        if up.startswith("+CME ERROR"):
            return False, CmeError
        if up.startswith("+CMS ERROR"):
            return False, CmsError
        if cur.is_call:
            if up in _CALL_FINALS:
                return False, CallFailed
            if up.startswith("CONNECT"):
                return True, None
        return None

    def _urc(self, line: str) -> bool:
        name, sep, value = line.partition(":")
        name = name.strip()
        if sep and name in self.urcs:
            if self.urcs[name]:
                self._pdu_urc = (name, value.strip())
            else:
                self._dispatch(Urc(name, value.strip()))
            return True
        if not sep and line in self.urcs:  # bare URCs: RING, NO CARRIER, RDY
            self._dispatch(Urc(line))
            return True
        return False

    def _dispatch(self, urc: Urc):
        log.debug("{name} URC {urc}", name=self.name, urc=urc)
        for fn in list(self._observers):
            try:
                fn(urc)
            except Exception:
                log.failure("{name}: URC observer failed on {urc}", name=self.name, urc=urc.name)

    def connectionLost(self, reason=None):
        self.connected = False
        self._quoted = None
        if self._zombie_timer is not None and self._zombie_timer.active():
            self._zombie_timer.cancel()
        self._zombie_timer = None
        if self._hold_timer is not None and self._hold_timer.active():
            self._hold_timer.cancel()
        self._hold_timer = None
        pending = ([self._current] if self._current else []) + list(self._queue)
        self._current = None
        self._queue.clear()
        for cmd in pending:
            if cmd.timer is not None and cmd.timer.active():
                cmd.timer.cancel()
        # observers first: whoever owns the port learns it is gone before any caller
        # whose command failed reacts (and perhaps sends again)
        for fn in list(self._close_observers):
            try:
                fn(reason)
            except Exception:
                log.failure("{name}: close observer failed", name=self.name)
        for cmd in pending:
            if not cmd.finished:
                cmd.finished = True
                cmd.deferred.errback(PortClosed(cmd.text, "port closed"))

    def close(self):
        if self.transport is not None and self.connected:
            self.transport.loseConnection()


def open_serial(reactor, path: str, engine: protocol.Protocol, baudrate: int = 115200):
    """Open a tty (real or pty) for ``engine`` with twisted's SerialPort (pyserial).
    Raises OSError / serial.SerialException when the device is missing."""
    from twisted.internet.serialport import SerialPort
    return SerialPort(engine, path, reactor, baudrate=baudrate)
