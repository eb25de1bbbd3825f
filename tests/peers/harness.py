"""Real SIP peers on 127.0.0.1 for tests: Kamailio, baresip, sipsak, sipvicious.

Reusable by every area (calls, SMS, SIP).  Each peer is started by this module,
remembered by PID and stopped by that PID only; nothing here ever kills by name.
Every wait is bounded by a deadline.  A missing Debian binary makes the test skip
with the binary's name in the reason (``require_binary``).

Fixtures (import them into the test module; they are plain pytest fixtures):

``peer_dir``          a fresh directory for peer configs, logs and recordings
``kamailio``          a started registrar/proxy (``kamailio/registrar.cfg``) with user
                      ``alice``/``secret``, realm ``goip.test``; ``.address``
                      ("127.0.0.1:port"), ``.add_user(u, pw)``, ``.contacts(aor)``,
                      ``.rpc(*kamcmd_args)``, ``.log_text()``
``kamailio_factory``  ``make(users={...}, name=..., port=None, start=True, tcp=False)``
                      for more instances (a backup registrar, a stopped primary)
``baresip_factory``   ``make(user, registrar="host:port", password=..., regint=60,
                      audio_file=None)``: headless baresip, auto-answer, 440 Hz WAV
                      source, calls recorded (``dump-*.wav``) in its directory;
                      ``.command("dial", uri)`` / ``("hangup")`` over ctrl_tcp,
                      ``.wait_event(reactor, "CALL_ESTABLISHED")`` (Deferred),
                      ``.find_event``, ``.clear_events``, ``.log_text()``

Helpers: ``free_port()``, ``poll_until(reactor, predicate, timeout)`` (Deferred),
``run_tool(reactor, argv, timeout)`` -> Deferred[(out, err, code)] for sipsak,
svwar and svcrack (never blocks the reactor; killed by PID on timeout),
``sipsak_argv(...)`` (adds ``-S``), ``svwar_argv(port, local_port, ...)`` and
``svcrack_argv(port, local_port, user, ...)`` (always ``-P``),
``raw_request(method, uri, ...)`` + ``udp_exchange(reactor, port, data)`` for
hand-made requests, ``sip_options_ping(port)`` (blocking, for readiness checks).

Quick use (pytest)::

    from tests.peers.harness import kamailio, baresip_factory, peer_dir  # noqa: F401

    @pytest_twisted.inlineCallbacks
    def test_call(kamailio, baresip_factory):
        kamailio.add_user("gw", "pw")           # at run time, through kamcmd
        phone = baresip_factory("alice", registrar=kamailio.address, password="secret")
        yield poll_until(reactor, lambda: kamailio.contacts("alice"))
        phone.command("dial", f"sip:gw@{kamailio.address}")
        event = yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=10)

Classes work without pytest too: ``Kamailio(workdir, port).start()`` … ``.stop()``.
Starting a peer blocks briefly (it waits for the peer to answer), so start peers
before the code under test needs the reactor, or from a fixture.

Peer facts (Debian 12) are in shared/PEERS.md: kamailio needs an explicit port and
no bare ``alias``; baresip opens its SIP port + 1 for TLS (``free_port(span=2)``);
baresip ends a call when its WAV source runs out (hence a 30 s tone); sipsak needs
``-S``; sipvicious binds 5060 unless given ``-P``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from twisted.internet import defer, task
from twisted.internet.error import ProcessTerminated

HERE = Path(__file__).resolve().parent
KAMAILIO_CFG = HERE / "kamailio" / "registrar.cfg"
BARESIP_DIR = HERE / "baresip"
KAMAILIO_REALM = "goip.test"
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------
# helpers


def require_binary(name: str) -> str:
    """Path of a peer binary, or skip the test naming the missing Debian package."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install the Debian package)")
    return path


def free_port(kind: int = socket.SOCK_DGRAM, span: int = 1) -> int:
    """A loopback port free for UDP and TCP (and the next ``span - 1`` ports)."""
    for _ in range(200):
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


def run_tool(reactor, argv: list[str], timeout: float = 30.0,
             cwd: str | None = None) -> defer.Deferred:
    """Run a command-line peer (sipsak, svwar, svcrack) without blocking the reactor.

    Fires with ``(stdout, stderr, exit_code)`` (bytes, bytes, int); a run longer
    than ``timeout`` is killed by its PID and reported with code -9.
    """
    from twisted.internet import protocol

    done = defer.Deferred()

    class Collect(protocol.ProcessProtocol):
        def __init__(self):
            self.out, self.err = [], []

        def outReceived(self, data):
            self.out.append(data)

        def errReceived(self, data):
            self.err.append(data)

        def processEnded(self, reason):
            if killer.active():
                killer.cancel()
            code = getattr(reason.value, "exitCode", 0)
            if isinstance(reason.value, ProcessTerminated) and code is None:
                code = -9
            done.callback((b"".join(self.out), b"".join(self.err), code or 0))

    proto = Collect()
    proc = reactor.spawnProcess(proto, argv[0], argv, env=dict(os.environ), path=cwd)

    def kill():
        try:
            proc.signalProcess("KILL")
        except Exception:
            pass

    killer = reactor.callLater(timeout, kill)
    return done


def udp_exchange(reactor, port: int, data: bytes, wait: float = 1.0,
                 host: str = LOOPBACK) -> defer.Deferred:
    """Send one raw datagram from a fresh loopback port; fire with every reply
    (list of bytes) received within ``wait`` seconds.  For hand-made attacks."""
    from twisted.internet.protocol import DatagramProtocol

    replies: list[bytes] = []

    class Collect(DatagramProtocol):
        def datagramReceived(self, datagram, addr):
            replies.append(datagram)

    listener = reactor.listenUDP(0, Collect(), interface=LOOPBACK)
    local = listener.getHost().port
    listener.write(data.replace(b"@@LOCALPORT@@", str(local).encode()), (host, port))
    d = task.deferLater(reactor, wait, lambda: None)
    d.addCallback(lambda _: defer.maybeDeferred(listener.stopListening))
    d.addCallback(lambda _: replies)
    return d


def raw_request(method: str, target: str, *, from_user: str = "attacker",
                headers: str = "", body: bytes = b"", call_id: str | None = None,
                cseq: int = 1) -> bytes:
    """A minimal request for ``udp_exchange`` (Via/Contact use @@LOCALPORT@@)."""
    call_id = call_id or os.urandom(8).hex()
    text = (f"{method} {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:@@LOCALPORT@@;branch=z9hG4bK{os.urandom(6).hex()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{from_user}@{LOOPBACK}>;tag={os.urandom(4).hex()}\r\n"
            f"To: <{target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{from_user}@{LOOPBACK}:@@LOCALPORT@@>\r\n"
            + headers +
            ("Content-Type: application/sdp\r\n" if body and method == "INVITE" else "")
            + f"Content-Length: {len(body)}\r\n\r\n")
    return text.encode() + body


# ---------------------------------------------------------------------------
# Kamailio


class Kamailio:
    """One Kamailio registrar/proxy (tests/peers/kamailio/registrar.cfg) on UDP loopback.

    ``users`` maps user -> password (realm ``goip.test``).  Registered contacts
    can be read with ``contacts(aor)``; users can be added at run time.
    """

    def __init__(self, workdir: Path, port: int | None = None,
                 users: dict[str, str] | None = None, name: str = "kamailio",
                 tcp: bool = False):
        self.binary = require_binary("kamailio")
        self.kamcmd = shutil.which("kamcmd") or shutil.which("kamcmd", path="/usr/sbin")
        self.workdir = Path(workdir) / name
        self.port = port or free_port()
        self.users = dict(users or {})
        self.name = name
        self.tcp = tcp
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def uri(self) -> str:
        return f"sip:{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kamailio.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _render(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        seeds = "\n".join(
            f'\t$sht(auth=>{user}) = "{password}";' for user, password in self.users.items()
        )
        text = KAMAILIO_CFG.read_text()
        text = text.replace("@@RUNDIR@@", str(self.workdir)).replace("@@USERS@@", seeds)
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(text)
        return cfg

    def start(self, timeout: float = 15.0) -> "Kamailio":
        cfg = self._render()
        argv = [self.binary, "-DD", "-E", "-f", str(cfg), "-Y", str(self.workdir),
                "-m", "64", "-M", "8", "-l", f"udp:{LOOPBACK}:{self.port}"]
        if self.tcp:
            argv += ["-A", "WITH_TCP", "-l", f"tcp:{LOOPBACK}:{self.port}"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited {self.proc.returncode}:\n{self.log_text()}")
            reply = sip_options_ping(self.port)
            if reply and reply.startswith(b"SIP/2.0 200"):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kamailio did not answer OPTIONS on {self.port}:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_pid(self.proc)
            self.proc = None
            self._log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rpc(self, *args: str) -> str:
        """One kamcmd command over this instance's private control socket."""
        if not self.kamcmd:
            pytest.skip("kamcmd is not installed (Debian package kamailio)")
        out = subprocess.run(
            [self.kamcmd, "-s", f"unix:{self.workdir}/ctl.sock", *args],
            capture_output=True, text=True, timeout=10,
        )
        return out.stdout + out.stderr

    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password
        self.rpc("htable.sets", "auth", user, password)

    def contacts(self, aor: str) -> list[str]:
        """Contact URIs currently bound to ``aor`` (empty when not registered)."""
        text = self.rpc("ul.lookup", "location", aor)
        return [line.split("Address:", 1)[1].strip()
                for line in text.splitlines() if "Address:" in line]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# baresip


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


# ---------------------------------------------------------------------------
# command-line peers


def sipsak_argv(*args: str) -> list[str]:
    """sipsak with ``-S`` (needed for replies after a challenge, PEERS.md)."""
    return [require_binary("sipsak"), "-S", *args]


def svwar_argv(target_port: int, local_port: int, extensions: str = "100-120",
               method: str = "REGISTER", *extra: str) -> list[str]:
    """svwar scanning 127.0.0.1:target_port from local_port (never the default 5060)."""
    return [require_binary("svwar"), "-P", str(local_port), "-b", LOOPBACK,
            "-p", str(target_port), "-m", method, "-e", extensions, "-t", "0.05",
            *extra, LOOPBACK]


def svcrack_argv(target_port: int, local_port: int, user: str, passwords: str = "1000-1050",
                 *extra: str) -> list[str]:
    """svcrack guessing numeric passwords of ``user`` from local_port."""
    return [require_binary("svcrack"), "-P", str(local_port), "-b", LOOPBACK,
            "-p", str(target_port), "-u", user, "-r", passwords, "-t", "0.05",
            *extra, LOOPBACK]


# ---------------------------------------------------------------------------
# pytest fixtures


@pytest.fixture
def peer_dir(tmp_path) -> Path:
    path = tmp_path / "peers"
    path.mkdir()
    return path


@pytest.fixture
def kamailio(peer_dir):
    """A primary Kamailio registrar with user ``alice``/``secret``; stopped after the test."""
    instance = Kamailio(peer_dir, users={"alice": "secret"}, name="kamailio-primary")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def kamailio_factory(peer_dir):
    """Start more Kamailio instances: ``kamailio_factory(users={...}, name=..., tcp=True)``."""
    started: list[Kamailio] = []

    def make(users: dict[str, str] | None = None, name: str | None = None,
             port: int | None = None, start: bool = True, tcp: bool = False) -> Kamailio:
        instance = Kamailio(peer_dir, port=port, users=users, tcp=tcp,
                            name=name or f"kamailio-{len(started)}")
        started.append(instance)
        return instance.start() if start else instance

    yield make
    for instance in reversed(started):
        instance.stop()


@pytest.fixture
def baresip_factory(peer_dir):
    """Start baresip instances: ``baresip_factory(user, registrar=..., password=...)``."""
    started: list[Baresip] = []

    def make(user: str, **kwargs) -> Baresip:
        phone = Baresip(peer_dir, user, **kwargs)
        started.append(phone)
        return phone.start()

    yield make
    for phone in reversed(started):
        phone.stop()
