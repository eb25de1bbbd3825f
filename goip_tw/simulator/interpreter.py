"""The AT side of a simulated module: line input, prompts, responses, URCs.

Command line framing follows ITU-T V.250 section 5.2 (``AT`` prefix, ``<CR>``
terminator, ``A/`` repeat, echo while ``E1``, verbose or numeric result codes
per ``V``).  Responses are atomic: URCs raised while a command runs are held
and written after its final result code, as TS 27.007 section 5.1 asks of a
module, unless the ``urc_mid`` fault says otherwise.  SMS text/PDU input after
the ``> `` prompt ends with Ctrl-Z (send) or ESC (abort), TS 27.005 3.5.1.
"""

from __future__ import annotations

from twisted.logger import Logger

from . import at
from .at import AtCommand, AtError, ParseError

log = Logger()

MAX_LINE = 4096


class AtInterpreter:
    """Mixin for :class:`~goip_tw.simulator.module.SimulatedModule`."""

    # -- AT port input ----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.faults.silent or not self.powered:
            return
        if self.settings.echo:
            self._write(data)
        self._inbuf += data
        self._drain()

    def port_closed(self, port) -> None:
        pass

    def _drain(self) -> None:
        for _ in range(1000):
            if self._busy or not self._inbuf:
                return
            if self._text_input is not None and self._text_len is not None:
                if len(self._inbuf) < self._text_len:
                    return
                text = self._inbuf[:self._text_len]
                self._inbuf = self._inbuf[self._text_len:]
                done, self._text_input, self._text_len = self._text_input, None, None
                self._run_text_input(done, text, True)
                continue
            if self._text_input is not None:
                cut = min((i for i in (self._inbuf.find(b"\x1a"), self._inbuf.find(b"\x1b"))
                           if i >= 0), default=-1)
                if cut < 0:
                    if len(self._inbuf) > MAX_LINE:
                        self._inbuf = b""
                    return
                text, term = self._inbuf[:cut], self._inbuf[cut:cut + 1]
                self._inbuf = self._inbuf[cut + 1:]
                done, self._text_input = self._text_input, None
                self._run_text_input(done, text, term == b"\x1a")
                continue
            cut = min((i for i in (self._inbuf.find(b"\r"), self._inbuf.find(b"\n"))
                       if i >= 0), default=-1)
            if cut < 0:
                if len(self._inbuf) > MAX_LINE:
                    self._inbuf = b""
                return
            line = self._inbuf[:cut]
            self._inbuf = self._inbuf[cut + 1:]
            self._handle_line(line.decode("latin-1"))

    def _handle_line(self, raw: str) -> None:
        upper = raw.upper()
        start = upper.find("AT")
        if start < 0:
            if upper.strip().endswith("A/") and self._last_line:
                return self._handle_line(self._last_line)
            return
        line = raw[start:].strip()
        self._last_line = line
        try:
            commands = at.parse_line(line[2:])
        except ParseError:
            log.info("simulator module {module}: unparsable line {line!r}",
                     module=self.number, line=line)
            return self.respond([], "ERROR")
        self._busy = True  # URCs raised while executing follow the final result
        self._execute(commands, [])

    def _execute(self, commands: list[AtCommand], info: list[str]) -> None:
        for index, cmd in enumerate(commands):
            override = self.faults.error_for(cmd.name)
            if override is not None:
                return self.respond(info, override)
            handler = at.lookup(cmd.name, self.dialect)
            if handler is None:
                return self.respond(info, "ERROR")
            try:
                result = handler(self, cmd)
            except AtError as err:
                return self.respond(info, err.render(self.settings.cmee))
            except Exception:
                log.failure("simulator module {module}: {command} failed",
                            module=self.number, command=cmd.name)
                return self.respond(info, "ERROR")
            if result is at.PENDING:
                return
            if isinstance(result, tuple):  # (lines, final result code)
                info.extend(result[0])
                return self.respond(info, result[1])
            info.extend(result or [])
        self.respond(info, "OK")

    def prompt(self, on_text, *, marker=b"\r\n> ", length=None) -> object:
        """Start a ``> `` text/PDU input ended by Ctrl-Z (send) or ESC (abort),
        or, with ``length``, a fixed number of bytes after ``CONNECT``.

        ``on_text(text)`` returns information lines or raises AtError."""
        self._text_input = on_text
        self._text_len = length
        self._busy = False
        self._write(marker)
        return at.PENDING

    def _run_text_input(self, on_text, data: bytes, send: bool) -> None:
        text = data.decode("latin-1").strip("\r\n")
        if not send:
            return self.respond([], "OK")
        try:
            lines = on_text(text) or []
        except AtError as err:
            return self.respond([], err.render(self.settings.cmee))
        except Exception:
            log.failure("simulator module {module}: text input failed", module=self.number)
            return self.respond([], "ERROR")
        self.respond(lines, "OK")

    # -- AT port output ---------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.plugged and self.at_port is not None:
            self.at_port.write(data)

    def _frame(self, lines: list[str]) -> bytes:
        if not lines:
            return b""
        text = "\r\n".join(lines)
        return (("\r\n" + text + "\r\n") if self.settings.verbose else (text + "\r\n")).encode(
            "utf-8")

    def _final(self, final: str) -> bytes:
        if self.settings.verbose:
            return f"\r\n{final}\r\n".encode()
        return f"{at.NUMERIC.get(final, final)}\r".encode()

    def respond(self, info: list[str], final: str) -> None:
        """Write a complete response (delayed when the ``slow`` fault is on)."""
        out = self.faults.take_garbage() + self._frame(info)
        mid = self.faults.take_urc_mid()
        if mid is not None:
            out += self._frame([mid])
        out += self._final(final)
        if self.faults.delay > 0:
            self._busy = True
            self.timers.later(self.faults.delay, self._emit, out)
        else:
            self._emit(out)

    def _emit(self, out: bytes) -> None:
        self._busy = False
        self._write(out)
        queued, self._urc_queue = self._urc_queue, []
        for chunk in queued:
            self._write(chunk)
        self._drain()

    def urc(self, *lines: str) -> None:
        """Unsolicited result code(s); held back while a response is pending."""
        if not self.plugged or self.faults.silent:
            return
        chunk = self._frame(list(lines))
        if self._busy or self._text_input is not None:
            self._urc_queue.append(chunk)
        else:
            self._write(chunk)

    def final_urc(self, code: str) -> None:
        """A final result code sent unsolicited (``NO CARRIER``, ``BUSY``)."""
        if self.plugged and not self.faults.silent:
            chunk = self._final(code)
            if self._busy or self._text_input is not None:
                self._urc_queue.append(chunk)
            else:
                self._write(chunk)
