"""Received SMS survive a SIGKILL between the store commit and the module delete: the
gateway process dies right after committing, the module keeps its copy, more SMS
arrive while no gateway runs, and after a restart every SMS is stored exactly once.

The simulated modules run in their own process (python -m goip_tw.simulator), as real
modules outlive a crashed gateway.
"""

import json
import signal
import sqlite3
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.sms.test_crash import Proc

HERE = Path(__file__).resolve().parent
MODULES = 2
MESSAGES = 24
SENDER = "+15550123"


def text_for(i: int) -> str:
    base = f"inbound {i:03d} 你好😀"
    return base + " long" * 30 if i % 4 == 0 else base


def post(control, path, payload):
    req = urllib.request.Request(f"{control}{path}", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def get(control, path):
    with urllib.request.urlopen(f"{control}{path}", timeout=10) as r:
        return json.load(r)


def history(db_path):
    db = sqlite3.connect(db_path)
    try:
        return Counter(r[0] for r in db.execute(
            "SELECT text FROM sms_history WHERE direction = 'in'"))
    except sqlite3.OperationalError:
        return Counter()
    finally:
        db.close()


def sim_store_used(control):
    used = 0
    for m in get(control, "/")["modules"]:
        for slot in m["slots"]:
            if slot:
                used += slot["sms_used"]
    return used


@pytest.mark.timeout(300)
def test_sigkill_after_commit_before_delete(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    sim = Proc([sys.executable, "-m", "goip_tw.simulator", "--modules", str(MODULES),
                "--slots", "1", "--control-port", "0", "--link-dir", str(links),
                "--reg-delay", "0.2"], stderr=open(tmp_path / "sim.log", "wb"))
    runner = None
    try:
        control = sim.wait_line(lambda t: t.startswith("control: "), 30).split()[1].rstrip("/")
        numbers = [m["msisdn"] for m in get(control, "/")["modules"]]
        runner = Proc([sys.executable, str(HERE / "inbound_crash_runner.py"), str(tmp_path),
                       str(links), str(MODULES), "--kill-after", "6"])
        runner.wait_line(lambda t: t == "READY", 60)
        for i in range(MESSAGES):
            post(control, "/sms", {"from": SENDER, "to": numbers[i % MODULES],
                                   "text": text_for(i)})
        runner.p.wait(120)
        assert runner.p.returncode == -signal.SIGKILL
        stored_before = sum(history(tmp_path / "gw.sqlite").values())
        assert stored_before >= 6
        assert sim_store_used(control) > 0  # the killed gateway left copies on the SIMs
        runner = Proc([sys.executable, str(HERE / "inbound_crash_runner.py"), str(tmp_path),
                       str(links), str(MODULES)])
        deadline = time.monotonic() + 120
        while True:
            counts = history(tmp_path / "gw.sqlite")
            if (sum(counts.values()) >= MESSAGES and sim_store_used(control) == 0) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        time.sleep(1.0)  # anything stored twice would show up by now
        counts = history(tmp_path / "gw.sqlite")
        twice = {t[:20]: n for t, n in counts.items() if n > 1}
        assert not twice, f"stored more than once: {twice}"
        assert set(counts) == {text_for(i) for i in range(MESSAGES)}
        assert sim_store_used(control) == 0
    finally:
        if runner is not None:
            runner.stop()
        sim.stop()
