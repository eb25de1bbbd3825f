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
They live in ``kamailio_peer.py``, ``baresip_peer.py`` and ``peerutil.py``; import
them from here.
Starting a peer blocks briefly (it waits for the peer to answer), so start peers
before the code under test needs the reactor, or from a fixture.

Peer facts (Debian 12) are in shared/PEERS.md: kamailio needs an explicit port and
no bare ``alias``; baresip opens its SIP port + 1 for TLS (``free_port(span=2)``);
baresip ends a call when its WAV source runs out (hence a 30 s tone); sipsak needs
``-S``; sipvicious binds 5060 unless given ``-P``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.internet import defer, task
from twisted.internet.error import ProcessTerminated

from tests.peers.baresip_peer import BARESIP_DIR, Baresip  # noqa: F401
from tests.peers.kamailio_peer import KAMAILIO_CFG, KAMAILIO_REALM, Kamailio  # noqa: F401
from tests.peers.peerutil import (HERE, LOOPBACK, free_port, poll_until,  # noqa: F401
                                  require_binary, sip_options_ping, write_tone_wav)


# ---------------------------------------------------------------------------
# running command-line peers and hand-made requests

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


def _status(datagram: bytes) -> int:
    head = datagram[:12]
    return int(head[8:11]) if head.startswith(b"SIP/2.0 ") and head[8:11].isdigit() else 0


def udp_exchange(reactor, port: int, data: bytes, wait: float = 1.0,
                 host: str = LOOPBACK, until: int | None = 200) -> defer.Deferred:
    """Send one raw datagram from a fresh loopback port; fire with the replies
    (list of bytes).  Returns as soon as a reply with status >= ``until`` arrives
    (200: a final response; 180: ringing is enough), waiting at most
    ``max(wait, 3)`` seconds, so a slow CI waits longer instead of missing the
    answer; ``until=None`` always waits ``wait`` seconds.  For hand-made
    requests and attacks."""
    from twisted.internet.protocol import DatagramProtocol

    replies: list[bytes] = []
    timeout = max(wait, 3.0) if until is not None else wait

    class Collect(DatagramProtocol):
        def datagramReceived(self, datagram, addr):
            replies.append(datagram)

    listener = reactor.listenUDP(0, Collect(), interface=LOOPBACK)
    local = listener.getHost().port
    listener.write(data.replace(b"@@LOCALPORT@@", str(local).encode()), (host, port))

    @defer.inlineCallbacks
    def collect():
        deadline = reactor.seconds() + timeout
        while reactor.seconds() < deadline:
            if until is not None and any(_status(r) >= until for r in replies):
                break
            yield task.deferLater(reactor, 0.02, lambda: None)
        yield defer.maybeDeferred(listener.stopListening)
        return replies

    return collect()


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
