"""Debian's gammu (a real AT client) against simulated modules (F-106).

gammu talks to the simulator over its pty exactly as to a USB modem; see
tests/peers/gammu/.  Skipped only when the gammu binary is absent.
"""

import os
import shutil

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from goip_tw.modem import pdu
from goip_tw.simulator import Network
from tests.modem.simhelp import wait_until

GAMMU = shutil.which("gammu")
TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "peers", "gammu", "gammurc.template")

pytestmark = pytest.mark.skipif(GAMMU is None, reason="gammu is not installed (apt-get install gammu)")


def gammurc(tmp_path, module):
    with open(TEMPLATE) as f:
        text = f.read().replace("{device}", module.at_path)
    path = tmp_path / f"gammurc{module.number}"
    path.write_text(text)
    return str(path)


@pytest.fixture
def network():
    net = Network(reactor, reg_delay=0.2, boot_delay=0.05)
    net.add_module("quectel", 4)
    net.add_module("simcom", 4)
    net.start()
    yield net
    net.stop()


def registered(network):
    """Fires once every module has booted and registered (its timers run on the real
    reactor: a fixed wait falls short when the process is scheduled late)."""
    return wait_until(lambda: all(m.registered for m in network.modules), timeout=10,
                      what="modules registered")


def run_gammu(rc, *args):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    return getProcessOutputAndValue(GAMMU, ["-c", rc, *args], env=env, reactor=reactor)


@pytest_twisted.inlineCallbacks
def test_gammu_identify(network, tmp_path):
    yield registered(network)
    for module in network.modules:
        out, err, code = yield run_gammu(gammurc(tmp_path, module), "identify")
        text = out.decode()
        assert code == 0, (text, err)
        assert f"IMEI                 : {module.imei}" in text
        assert f"SIM IMSI             : {module.sim.imsi}" in text
        assert module.identity.manufacturer.split()[0] in text


@pytest_twisted.inlineCallbacks
def test_gammu_getallsms_multipart_and_ucs2(network, tmp_path):
    yield registered(network)
    target = network.modules[0]
    phone = network.add_remote_phone("+15553000")
    long_text = " ".join(f"word{i}" for i in range(60))
    phone.send_sms(target.sim.msisdn, long_text)
    phone.send_sms(target.sim.msisdn, "Grüße 😀 你好")
    assert target.sim.store.used == 4
    out, err, code = yield run_gammu(gammurc(tmp_path, target), "getallsms")
    text = out.decode()
    assert code == 0, (text, err)
    assert text.count('Remote number        : "+15553000"') == 4
    assert "part 1 of 3" in text and "part 3 of 3" in text
    assert "Coding               : Unicode (no compression)" in text
    assert "Grüße 😀 你好" in text
    assert "word0 word1" in text and "word59" in text


@pytest_twisted.inlineCallbacks
def test_gammu_sendsms_reaches_the_other_sim(network, tmp_path):
    yield registered(network)
    sender, receiver = network.modules
    rc = gammurc(tmp_path, sender)
    out, err, code = yield run_gammu(rc, "sendsms", "TEXT", receiver.sim.msisdn,
                                     "-text", "hello from gammu")
    assert code == 0, (out, err)
    assert b"OK, message reference=" in out
    yield deferLater(reactor, 0.1, lambda: None)
    stored = receiver.sim.store.listing(4)
    assert [pdu.decode(m.pdu).text for m in stored] == ["hello from gammu"]
    assert pdu.decode(stored[0].pdu).sender == sender.sim.msisdn
    entry = network.sms.log[-1]
    assert entry["from"] == sender.sim.msisdn and entry["status"] == "delivered"


def test_done_when_cli_plus_gammu_sendsms(tmp_path):
    """Issue 3's acceptance: ``python -m goip_tw.simulator --modules 2``, gammu on
    the printed pty sends an SMS, the other module's SIM receives it."""
    import json
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "goip_tw.simulator", "--modules", "2", "--control-port", "0",
         "--reg-delay", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=root)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(5)]
        at1 = lines[0].split(" at ")[1].split()[0]
        number2 = lines[1].rsplit(" number ", 1)[1]
        port = int(lines[4].rsplit(":", 1)[1].strip("/"))
        rc = tmp_path / "gammurc"
        with open(TEMPLATE) as f:
            rc.write_text(f.read().replace("{device}", at1))
        deadline = time.monotonic() + 30  # boot + registration (0.5 s + 0.2 s) there
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                if all(m["registered"] for m in json.load(r)["modules"]):
                    break
            assert time.monotonic() < deadline, "simulated modules never registered"
            time.sleep(0.1)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        done = subprocess.run([GAMMU, "-c", str(rc), "sendsms", "TEXT", number2, "-text",
                               "done when"], capture_output=True, text=True, timeout=60,
                              env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            state = json.load(r)
        module2 = state["modules"][1]
        assert module2["msisdn"] == number2
        assert module2["slots"][0]["sms_used"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sms", timeout=5) as r:
            log = json.load(r)["log"]
        assert log[-1]["to"] == number2 and log[-1]["text"] == "done when"
        assert log[-1]["status"] == "delivered"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
