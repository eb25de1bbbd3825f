"""Drive simulated modules through their real ptys, synchronously.

The network runs on ``MemoryReactorClock``: timers are a test clock, and the
pty file descriptors are registered with it instead of a real reactor.  The
``pump`` helper plays the reactor's part (read what is readable, flush what is
buffered), so every byte still crosses a real pseudo-terminal.

The kernel moves pty data on its own schedule (a worker thread; on a busy machine
tens of milliseconds later), so a quiet moment does not mean the other side has
said everything: a :class:`Client` counts the bytes each side handed to the pty and
reads until every one of them has arrived.
"""

from __future__ import annotations

import os
import select
import termios
import time
import tty

import pytest
from twisted.internet.testing import MemoryReactorClock

from goip_tw.simulator import Network

IO_SETTLE = 0.005
#: how long a read waits for bytes already handed to the pty to come out of it
IO_DEADLINE = 10.0
FINALS = ("OK", "ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER", "BUSY", "NO ANSWER",
          "CONNECT", "> ")


def pump(reactor, rounds=5):
    for _ in range(rounds):
        for reader in list(reactor.readers):
            if reader.fileno() >= 0:
                reader.doRead()
        for writer in list(reactor.writers):
            if writer.fileno() >= 0:
                writer.doWrite()


def track(port):
    """Count what the module behind ``port`` (a simulator PtyPort) writes to its pty
    and reads from it from now on; our clients count the other direction. Bytes
    already waiting for the client count as written (opening the slave can drop
    what was waiting: call this once the client's fd is set up)."""
    if port is None:
        return None
    port.bytes_out = port.unread_bytes()
    port.bytes_in = port.clients_read = port.clients_wrote = 0
    if hasattr(port, "counted"):
        return port
    port.counted = True
    count_into(port, "bytes_out", port, "writeSomeData", written=True)
    count_into(port, "bytes_in", port, "_data_received")
    return port


def count_into(port, field, obj, method, written=False):
    """Wrap ``obj.<method>`` so it adds to ``port.<field>`` the bytes it handles: a
    write what it returns (the bytes accepted), a receive the data's length."""
    inner = getattr(obj, method)

    def counting(data):
        n = inner(data) if written else len(data)
        if isinstance(n, int) and n > 0:
            setattr(port, field, getattr(port, field) + n)
        return n if written else inner(data)

    setattr(obj, method, counting)


class Client:
    """A TE on the slave side of a pty (``port``: the module's end, counted)."""

    def __init__(self, reactor, path, port=None):
        self.reactor = reactor
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.port = track(port)
        self.buffer = b""

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def write(self, data: bytes):
        written = os.write(self.fd, data)
        if self.port is not None:
            self.port.clients_wrote += written

    def in_flight(self) -> bool:
        """Bytes one side handed to the pty that the other has not read yet."""
        p = self.port
        if p is None or p.closed:
            return False
        return (p.bytes_out > p.clients_read or p.clients_wrote > p.bytes_in
                or p.pending_bytes() > 0)

    def read(self) -> bytes:
        """Pump and read until neither side has bytes in flight.

        Waits on the fds, never on time: a quiet ``IO_SETTLE`` ends the read only
        once every byte either side handed to the pty has come out (bounded by
        ``IO_DEADLINE``)."""
        out = b""
        deadline = time.monotonic() + IO_DEADLINE
        rounds = 0
        while rounds < 200 and time.monotonic() < deadline:
            pump(self.reactor)
            fds = [self.fd] + [r.fileno() for r in self.reactor.readers if r.fileno() >= 0]
            ready, _, _ = select.select(fds, [], [], IO_SETTLE)
            if not ready:
                if self.in_flight():
                    continue
                break
            rounds += 1
            if self.fd in ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break  # hung up: the module was unplugged
                out += chunk
                if self.port is not None:
                    self.port.clients_read += len(chunk)
        self.buffer += out
        return out

    def take(self) -> str:
        self.read()
        text, self.buffer = self.buffer.decode("utf-8", "replace"), b""
        return text

    def cmd(self, line: str, *, advance: float = 0.0) -> str:
        """Send a command line and return everything up to the final result."""
        self.take()
        self.write(line.encode("utf-8") + b"\r")
        text = ""
        for _ in range(50):
            if advance:
                self.reactor.advance(advance)
            self.read()
            text = self.buffer.decode("utf-8", "replace")
            if any(f"\r\n{f}" in text or text.endswith(f) for f in FINALS):
                if text.endswith("\r\n") or text.endswith("> "):
                    break
            if text[-2:-1].isdigit() and text.endswith("\r") and "\n" not in text[-3:]:
                break  # ATV0 numeric result code
        self.buffer = b""
        return text

    def lines(self, line: str, **kw) -> list[str]:
        return [x for x in self.cmd(line, **kw).split("\r\n") if x]


class Sim:
    """A started network with helpers."""

    def __init__(self, modules=2, slots=4, dialects=None, **kw):
        self.reactor = MemoryReactorClock()
        kw.setdefault("reg_delay", 1.0)
        kw.setdefault("boot_delay", 0.1)
        self.network = Network(self.reactor, **kw)
        for i in range(modules):
            dialect = dialects[i] if dialects else "quectel"
            self.network.add_module(dialect, slots)
        self.clients = []
        self.network.start()

    def settle(self, seconds=3.0, step=0.1):
        for _ in range(int(seconds / step)):
            self.reactor.advance(step)
            pump(self.reactor)

    def client(self, index=0, kind="at") -> Client:
        module = self.network.modules[index]
        path = module.at_path if kind == "at" else module.audio_path
        c = Client(self.reactor, path, module.at_port if kind == "at" else module.audio_port)
        self.clients.append(c)
        return c

    def close(self):
        for c in self.clients:
            c.close()
        self.network.stop()
        pump(self.reactor)
        assert not [c for c in self.reactor.getDelayedCalls() if c.active()], \
            self.reactor.getDelayedCalls()


def ready(make, modules=2, **kw):
    """A network whose modules have booted, with echo off and +CME codes on."""
    s = make(modules=modules, **kw)
    clients = [s.client(i) for i in range(modules)]
    s.settle(2)
    for c in clients:
        c.take()
        c.cmd("ATE0")
        c.cmd("AT+CMEE=1")
    return s, clients


@pytest.fixture
def sim():
    made = []

    def make(**kw):
        s = Sim(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
