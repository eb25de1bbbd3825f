"""Headless baresip peer driven over ctrl_tcp; see harness.py."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from twisted.internet import defer

from tests.peers.peerutil import (HERE, LOOPBACK, _stop_pid, free_port, poll_until,
                                  require_binary, write_tone_wav)

BARESIP_DIR = HERE / "baresip"


class Baresip:
    """A headless baresip 1.0 with ctrl_tcp; one account, auto-answer.

    Commands go over ctrl_tcp (netstring-framed JSON); a reader thread collects
    events (``CALL_INCOMING``, ``CALL_ESTABLISHED``, ``REGISTER_OK`` …) in
    ``events`` so tests can wait for them with ``wait_event`` (Deferred) or
    ``wait_event_blocking``.
    """

    def __init__(self, workdir: Path, user: str, registrar: str | None = None,
                 password: str | None = None, sip_port: int | None = None,
                 audio_file: str | None = None, regint: int = 60, name: str | None = None,
                 extra_account_params: str = ""):
        self.binary = require_binary("baresip")
        self.name = name or f"baresip-{user}"
        self.workdir = Path(workdir) / self.name
        self.user = user
        self.registrar = registrar
        self.password = password
        self.sip_port = sip_port or free_port(span=2)
        self.ctrl_port = free_port(socket.SOCK_STREAM)
        self.audio_file = audio_file
        self.regint = regint
        self.extra = extra_account_params
        self.proc: subprocess.Popen | None = None
        self.events: list[dict] = []
        self._responses: "queue.Queue[dict]" = queue.Queue()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def _render(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        template = (BARESIP_DIR / "config.template").read_text()
        audio = self.audio_file or str(write_tone_wav(self.workdir / "tone.wav"))
        text = (template.replace("@@SIP_PORT@@", str(self.sip_port))
                .replace("@@CTRL_PORT@@", str(self.ctrl_port))
                .replace("@@AUDIO@@", audio)
                .replace("@@DUMP@@", str(self.workdir)))
        (self.workdir / "config").write_text(text)
        if self.registrar:
            aor = f"<sip:{self.user}@{self.registrar}>"
            params = [f"regint={self.regint}"]
        else:
            aor = f"<sip:{self.user}@{LOOPBACK}:{self.sip_port}>"
            params = ["regint=0"]
        if self.password:
            params.append(f"auth_pass={self.password}")
        params.append("answermode=auto")
        line = aor + ";" + ";".join(params) + self.extra
        (self.workdir / "accounts").write_text(line + "\n")
        (self.workdir / "contacts").write_text("")

    def start(self, timeout: float = 15.0) -> "Baresip":
        self._render()
        self._log = open(self.workdir / "baresip.log", "wb")
        self.proc = subprocess.Popen([self.binary, "-f", str(self.workdir)],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                self._sock = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"baresip ctrl_tcp not reachable:\n{self.log_text()}")
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        return self

    def log_text(self) -> str:
        path = self.workdir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _read_loop(self) -> None:
        buf = b""
        sock = self._sock
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b":" in buf:
                head, _, rest = buf.partition(b":")
                if not head.isdigit():
                    return
                size = int(head)
                if len(rest) < size + 1:
                    break
                payload, buf = rest[:size], rest[size + 1:]
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                if msg.get("event"):
                    with self._lock:
                        self.events.append(msg)
                elif msg.get("response"):
                    self._responses.put(msg)

    def command(self, command: str, params: str = "", wait: float | None = 5.0) -> dict | None:
        """Send one ctrl_tcp command; return its response (or None without waiting)."""
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        if wait is None:
            return None
        try:
            return self._responses.get(timeout=wait)
        except queue.Empty:
            return None

    def clear_events(self) -> None:
        """Forget events seen so far (before waiting for the next call's events)."""
        with self._lock:
            self.events.clear()

    def find_event(self, kind: str) -> dict | None:
        with self._lock:
            for event in self.events:
                if event.get("type") == kind:
                    return event
        return None

    def wait_event(self, reactor, kind: str, timeout: float = 10.0) -> defer.Deferred:
        """Deferred with the first event of type ``kind`` (e.g. CALL_ESTABLISHED)."""
        return poll_until(reactor, lambda: self.find_event(kind), timeout)

    def wait_event_blocking(self, kind: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.find_event(kind)
            if event:
                return event
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: no {kind} event within {timeout}s: {self.events}")

    def stop(self) -> None:
        """Stop by PID: a first SIGTERM unregisters slowly, so a second one follows."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    _stop_pid(self.proc, grace=3)
            self.proc = None
            self._log.close()
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
