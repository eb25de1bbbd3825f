"""Drive simulated modules through their real ptys, synchronously.

The network runs on ``MemoryReactorClock``: timers are a test clock, and the
pty file descriptors are registered with it instead of a real reactor.  The
``pump`` helper plays the reactor's part (read what is readable, flush what is
buffered), so every byte still crosses a real pseudo-terminal.
"""

from __future__ import annotations

import os
import termios
import tty

import pytest
from twisted.internet.testing import MemoryReactorClock

from goip_tw.simulator import Network

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


class Client:
    """A TE on the slave side of a pty."""

    def __init__(self, reactor, path):
        self.reactor = reactor
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.buffer = b""

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def write(self, data: bytes):
        os.write(self.fd, data)

    def read(self) -> bytes:
        pump(self.reactor)
        out = b""
        for _ in range(100):
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            out += chunk
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
        c = Client(self.reactor, path)
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
