"""Durability: SIGKILL the gateway while 1,000 accepted messages are queued and some
are mid-send; after a restart every message reaches the simulated network exactly once.

The simulated modules run in their own process (goip_tw.simulator through
crash_simulator.py), as real modules outlive a crashed gateway; the network's event
log is the count.
"""

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from crash_runner import RECIPIENT, text_for  # noqa: E402

MESSAGES = 1000
MODULES = 4
SIM_STORE = int(os.environ.get("CRASH_SIM_STORE", "255"))  # entries per simulated SIM


class Proc:
    """A child process whose stdout lines we wait for, with deadlines."""

    def __init__(self, argv, **kw):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=kw.pop("stderr", None),
                                  cwd=ROOT, **kw)
        self.lines: list[str] = []

    def wait_line(self, pred, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.p.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"process exited: {self.lines[-5:]}")
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode(errors="replace")
                    self.lines.append(text)
                    if pred(text):
                        return text
        raise AssertionError(f"timed out; last lines {self.lines[-5:]}")

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def network_events(control):
    out, since = [], 0
    for _ in range(1000):
        with urllib.request.urlopen(f"{control}/events?since={since}", timeout=10) as r:
            data = json.load(r)
        out += data["events"]
        if data["next"] <= since + len(data["events"]) and not data["events"]:
            break
        since = data["next"]
        if not data["events"]:
            break
    return out


def delivered_texts(control):
    return Counter(e["text"] for e in network_events(control)
                   if e["kind"] == "sms" and e.get("to") == RECIPIENT)


@pytest.mark.timeout(600)
def test_sigkill_mid_send_then_exactly_once(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    sim = Proc([sys.executable, str(HERE / "crash_simulator.py"), "--sim-store", str(SIM_STORE),
                "--modules", str(MODULES),
                "--slots", "1", "--control-port", "0", "--link-dir", str(links),
                "--reg-delay", "0.2"], stderr=open(tmp_path / "sim.log", "wb"))
    runner = None
    try:
        line = sim.wait_line(lambda t: t.startswith("control: "), 30)
        control = line.split()[1].rstrip("/")
        # The recipient is a phone that records what it gets and never answers.
        req = urllib.request.Request(f"{control}/phones", data=json.dumps(
            {"number": RECIPIENT}).encode(), headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).close()
        runner = Proc([sys.executable, str(HERE / "crash_runner.py"), str(tmp_path),
                       str(links), str(MODULES), "--submit", str(MESSAGES)])
        runner.wait_line(lambda t: t == f"ACCEPTED {MESSAGES}", 120)
        # Let some go out, then kill while the lines are busy.
        deadline = time.monotonic() + 120
        while sum(delivered_texts(control).values()) < 50:
            assert time.monotonic() < deadline, "nothing was sent"
            time.sleep(0.2)
        runner.stop(signal.SIGKILL)
        killed_at = time.time()
        before = delivered_texts(control)
        assert 0 < sum(before.values()) < MESSAGES
        runner = Proc([sys.executable, str(HERE / "crash_runner.py"), str(tmp_path),
                       str(links), str(MODULES)])
        runner.wait_line(lambda t: t == "IDLE", 300)
        counts = delivered_texts(control)
        expected = {text_for(i) for i in range(MESSAGES)}
        missing = expected - set(counts)
        twice = {t: n for t, n in counts.items() if n > 1}
        assert not twice, f"sent more than once: {list(twice.items())[:5]}"
        assert not missing, f"never sent: {sorted(missing)[:5]}"
        assert set(counts) == expected
        # Status reports (some stored on the SIM while no gateway ran) reach every
        # part of every message, including the parts resolved by the SIM's TP-MR after
        # the restart: the network reports each part (TS 23.040 9.2.3.5) and the
        # gateway drains the SIM store at start (AT+CMGL=4) and deletes a report only
        # after the store committed it.  The SIM stores are large enough for the
        # outage (see crash_simulator.py): a report the module had to drop would show
        # as an ``sms_report_dropped`` event.
        parts = sum(2 if i % 5 == 0 else 1 for i in range(MESSAGES))
        db = sqlite3.connect(tmp_path / "gw.sqlite")
        query = "SELECT COUNT(*) FROM sms_part WHERE state = 'delivered'"
        deadline = time.monotonic() + 60
        while db.execute(query).fetchone()[0] < parts and time.monotonic() < deadline:
            time.sleep(0.5)
        reported = db.execute(query).fetchone()[0]
        states = dict(db.execute("SELECT state, COUNT(*) FROM sms_message GROUP BY state"))
        db.close()
        all_events = network_events(control)
        events = Counter(e["kind"] for e in all_events)
        dropped = [round(e["time"] - killed_at, 1) for e in all_events
                   if e["kind"] == "sms_report_dropped"]
        assert not dropped, f"reports dropped at (s after the kill) {dropped}; {events}"
        assert events["sms_report"] == parts, events
        assert reported == parts, (reported, parts, states, events)
        assert states == {"delivered": MESSAGES}
        # Each report was deleted from its SIM once stored (none left behind).
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(f"{control}/", timeout=10) as r:
                used = [m["slots"][0]["sms_used"] for m in json.load(r)["modules"]]
            if not any(used) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert used == [0] * MODULES
    finally:
        if runner is not None:
            runner.stop()
        sim.stop()
