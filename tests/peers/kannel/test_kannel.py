"""Kannel (bearerbox + smsbox, Debian) bound to our SMSC as a transceiver on 127.0.0.1.

A 3-part UCS2 message sent through Kannel's HTTP sendsms reaches the lines, its
delivery receipts come back as a Kannel DLR callback, and a received SMS reaches
Kannel's sms-service get-url.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import defer, reactor, task
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from goip_tw.sms.model import StatusReport
from goip_tw.sms.queue import QueueSettings, SmsQueue
from goip_tw.smpp.protocol import SmppSettings, SmscFactory
from goip_tw.smpp.service import SmscBackend
from tests.peers import peerutil
from tests.sms.fakes import FakeLine, make_store

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not (shutil.which("bearerbox") or os.path.exists("/usr/sbin/bearerbox")),
                                reason="kannel (bearerbox/smsbox) is not installed")


def free_port() -> int:
    """Outside the kernel's ephemeral range: no connection made meanwhile takes it
    before Kannel binds it (tests/peers/peerutil.py)."""
    return peerutil.free_port()


def _binary(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


class Recorder(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.hits: list[tuple[str, dict]] = []

    def render_GET(self, request):
        args = {k.decode(): [v.decode("latin-1") for v in vs] for k, vs in request.args.items()}
        self.hits.append((request.path.decode(), args))
        return b"ok"


class Kannel:
    """bearerbox + smsbox started here, stopped by PID."""

    def __init__(self, workdir: Path, smsc_port: int, http_port: int, system_id, password):
        self.dir = workdir
        self.ports = {"ADMIN_PORT": free_port(), "SMSBOX_PORT": free_port(),
                      "SENDSMS_PORT": free_port()}
        text = (HERE / "kannel.conf.in").read_text()
        values = dict(self.ports, SMSC_PORT=smsc_port, HTTP_PORT=http_port, DIR=str(workdir),
                      SYSTEM_ID=system_id, PASSWORD=password)
        for k, v in values.items():
            text = text.replace(f"@{k}@", str(v))
        (workdir / "store").mkdir()
        self.conf = workdir / "kannel.conf"
        self.conf.write_text(text)
        self.procs: list[subprocess.Popen] = []

    def start(self):
        for box in ("bearerbox", "smsbox"):
            log = open(self.dir / f"{box}.out", "wb")
            self.procs.append(subprocess.Popen([_binary(box), str(self.conf)], stdout=log,
                                               stderr=subprocess.STDOUT, cwd=self.dir))
            log.close()
            # smsbox must find bearerbox listening, or it exits; and sendsms
            # answers only once smsbox has opened its HTTP port
            self._wait_port(box, self.ports["SMSBOX_PORT" if box == "bearerbox"
                                             else "SENDSMS_PORT"])

    def _wait_port(self, box: str, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if self.procs[-1].poll() is not None:
                raise RuntimeError(f"{box} exited; see {self.dir}/{box}.out")
            time.sleep(0.05)
        raise RuntimeError(f"{box} did not open port {port}")

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    @property
    def sendsms(self):
        return f"http://127.0.0.1:{self.ports['SENDSMS_PORT']}/cgi-bin/sendsms"


@defer.inlineCallbacks
def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        yield task.deferLater(reactor, 0.1, lambda: None)


@pytest.fixture
def env(tmp_path, monkeypatch):
    store = make_store(tmp_path / "k.sqlite", reactor, monkeypatch)
    net = []
    lines = [FakeLine(1, net)]
    queue = SmsQueue(store, reactor, settings=QueueSettings(sweep_interval=3600))
    queue.add_line(lines[0])
    pytest_twisted.blockon(queue.startService())
    backend = SmscBackend(queue, reactor, "1", "kpass", lines=lambda: 1, retry_interval=1)
    smsc = reactor.listenTCP(0, SmscFactory(backend, reactor, SmppSettings()),
                             interface="127.0.0.1")
    recorder = Recorder()
    web = reactor.listenTCP(0, Site(recorder), interface="127.0.0.1")
    kannel = Kannel(tmp_path, smsc.getHost().port, web.getHost().port, "1", "kpass")
    kannel.start()
    env = type("Env", (), dict(store=store, queue=queue, backend=backend, net=net,
                               recorder=recorder, kannel=kannel,
                               http_port=web.getHost().port))
    yield env
    kannel.stop()
    backend.close()
    queue.stopService()
    for s in list(backend.sessions):
        s.transport.abortConnection()
    pytest_twisted.blockon(smsc.stopListening())
    pytest_twisted.blockon(web.stopListening())
    pytest_twisted.blockon(store.stop())


@pytest_twisted.inlineCallbacks
def test_kannel_sendsms_ucs2_3_parts_dlr_and_mo(env):
    yield wait_for(lambda: env.backend.sessions, 30, "kannel to bind")
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    text = "Grüße aus Kannel 😀 " * 8  # 160 characters of UCS2: 3 parts
    dlr_url = f"http://127.0.0.1:{env.http_port}/dlr?s=%d&id=%F"
    url = (f"{env.kannel.sendsms}?username=tester&password=testpw&from=goiptest"
           f"&to=%2B4915550001&charset=UTF-8&coding=2&dlr-mask=3"
           f"&dlr-url={quote(dlr_url, safe='')}&text={quote(text)}")
    r = yield http.get(url)
    body = yield r.text()
    assert r.code == 202, body
    yield wait_for(lambda: len(env.net) >= 3, 30, "3 parts at the line")
    assert [n[3][1:] for n in env.net] == [(3, 1), (3, 2), (3, 3)]
    assert "".join(n[2] for n in env.net) == text
    assert env.queue.accepted == 1
    for line, dest, part, concat, mr in env.net:
        yield env.queue.on_status_report(StatusReport(line, mr, True))
    yield wait_for(lambda: any(p == "/dlr" and h["s"] == ["1"] for p, h in env.recorder.hits),
                   30, "Kannel's delivered DLR callback")
    env.backend.deliver_mo(1, "+4917012345", "Reply from the phone ✓")
    yield wait_for(lambda: any(p == "/mo" for p, _ in env.recorder.hits), 30, "MO at get-url")
    mo = next(h for p, h in env.recorder.hits if p == "/mo")
    raw = mo["text"][0].encode("latin-1")
    got = raw.decode("utf-16-be") if mo["coding"] == ["2"] else raw.decode("utf-8")
    assert mo["from"] == ["+4917012345"] and got == "Reply from the phone ✓"
