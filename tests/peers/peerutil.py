"""Small helpers shared by the peer classes of tests/peers (see harness.py)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from twisted.internet import defer, task

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"


def require_binary(name: str) -> str:
    """Path of a peer binary, or skip the test naming the missing Debian package."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install the Debian package)")
    return path


#: where peers' ports come from: below the gateway's default RTP range
#: (16384-32768) and the kernel's ephemeral range (32768-60999 on Linux), so a
#: port probed free here is not taken by some other bind(0) before the peer
#: starts (a baresip "Address already in use" seen in a clean-clone run)
PEER_PORTS = range(10000, 16384)


def free_port(kind: int = socket.SOCK_DGRAM, span: int = 1) -> int:
    """A loopback port free for UDP and TCP (and the next ``span - 1`` ports)."""
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randrange(PEER_PORTS.start, PEER_PORTS.stop - span)
        if all(_port_free(base + i) for i in range(span)):
            return base
    for _ in range(200):  # crowded: fall back to what the kernel hands out
        probe = socket.socket(socket.AF_INET, kind)
        probe.bind((LOOPBACK, 0))
        base = probe.getsockname()[1]
        probe.close()
        if base + span >= 65535:
            continue
        if all(_port_free(base + i) for i in range(span)):
            return base
    raise RuntimeError("no free loopback port found")


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        finally:
            sock.close()
    return True


def sip_options_ping(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bytes | None:
    """Send one OPTIONS over UDP and return the raw reply, or None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(timeout)
    local = sock.getsockname()[1]
    branch = "z9hG4bK" + os.urandom(6).hex()
    msg = (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:{local};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag={os.urandom(4).hex()}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {os.urandom(8).hex()}@{LOOPBACK}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    try:
        sock.sendto(msg, (host, port))
        data, _ = sock.recvfrom(65535)
        return data
    except OSError:
        return None
    finally:
        sock.close()


def write_tone_wav(path: Path, freq: float = 440.0, seconds: float = 30.0,
                   rate: int = 8000) -> Path:
    """A mono 16-bit WAV sine tone for baresip's aufile source.

    baresip ends the call when the file runs out ("end of file"), hence 30 s.
    """
    import math
    import struct
    import wave

    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


def _stop_pid(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM our own child by PID, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


def poll_until(reactor, predicate: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.05) -> defer.Deferred:
    """Deferred firing with the first truthy ``predicate()`` value, bounded by ``timeout``.

    Lets a test wait for a real peer without blocking the reactor that runs the
    code under test.
    """
    deadline = reactor.seconds() + timeout

    @defer.inlineCallbacks
    def loop():
        while True:
            value = predicate()
            if value:
                return value
            if reactor.seconds() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            yield task.deferLater(reactor, interval, lambda: None)

    return loop()
