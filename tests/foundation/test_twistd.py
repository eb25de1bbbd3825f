"""`twistd -n goip` as a user runs it: health, login, SIGTERM."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import base64

import pytest

# Ports below the kernel's ephemeral range: a port probed free there can be taken by
# another bind(0) (the gateway's own included) before twistd binds it.
from tests.peers.peerutil import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def gateway(tmp_path):
    web = free_port()
    args = [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=", "goip",
            "--data-dir", str(tmp_path / "data"), "--web-port", str(web),
            "--sip-port", str(free_port(socket.SOCK_DGRAM)), "--smpp-port", str(free_port()),
            "--simulate", "2"]
    log = open(tmp_path / "twistd.log", "w+")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    base = f"http://127.0.0.1:{web}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status, _ = get(base + "/health")
            if status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    yield proc, base, tmp_path, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    log.close()


def read_log(log):
    log.flush()
    log.seek(0)
    return log.read()


def test_health_login_and_clean_sigterm(gateway):
    proc, base, tmp_path, log = gateway
    assert proc.poll() is None, read_log(log)
    status, body = get(base + "/health")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok" and health["version"]
    assert "store" in health["services"] and "web" in health["services"]
    assert "password" not in body.decode().lower()

    assert get(base + "/")[0] == 401
    assert get(base + "/", "admin:wrong")[0] == 401
    assert get(base + "/", "user:user")[0] == 401  # disabled by default
    status, page = get(base + "/", "admin:admin")
    assert status == 200 and b"<table" in page
    status, lines = get(base + "/api/lines", "admin:admin")
    assert status == 200 and isinstance(json.loads(lines), list)
    assert get(base + "/api/lines")[0] == 401

    # the console shows where to log in
    text = read_log(log)
    assert re.search(r"^web: http://127\.0\.0\.1:\d+/\s+login: admin", text, re.M), text

    proc.send_signal(signal.SIGTERM)
    # twistd re-raises the signal after a clean shutdown (so init systems see why it ended)
    assert proc.wait(60) in (0, -signal.SIGTERM)
    text = read_log(log)
    assert "Traceback" not in text, text
    assert "stopped cleanly" in text
    data = tmp_path / "data"
    assert (data / "goip.toml").exists()
    # the store closed: SQLite removes the WAL file on a clean close of the last connection
    assert not (data / "goip.sqlite-wal").exists()


def test_json_logs_and_sighup_reload(tmp_path):
    web = free_port()
    data = tmp_path / "data"
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    args = [twistd, "-n", "--pidfile=", "goip", "--data-dir", str(data), "--web-port", str(web),
            "--sip-port", str(free_port(socket.SOCK_DGRAM)), "--smpp-port", str(free_port()),
            "--simulate", "1", "--log-format", "json"]
    with open(tmp_path / "out.log", "w+") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=str(tmp_path))
        try:
            base = f"http://127.0.0.1:{web}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if get(base + "/health")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            cfg_path = data / "goip.toml"
            text = cfg_path.read_text()
            assert 'name = "goip-tw"' in text
            cfg_path.write_text(text.replace('name = "goip-tw"', 'name = "reloaded box"'))
            proc.send_signal(signal.SIGHUP)
            name = None
            while time.monotonic() < deadline:
                name = json.loads(get(base + "/api/config", "admin:admin")[1])["general"]["name"]
                if name == "reloaded box":
                    break
                time.sleep(0.2)
            assert name == "reloaded box"
            shown = json.loads(get(base + "/api/config", "admin:admin")[1])
            # the override from the command line survived the reload; secrets are redacted
            assert shown["web"]["port"] == web
            assert shown["users"]["admin_password"] == "********"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        out.seek(0)
        lines = [l for l in out.read().splitlines() if l.strip()]
    parsed = []
    for line in lines:
        if line.startswith("{"):
            parsed.append(json.loads(line.split("\x1e")[-1]))
    assert parsed, lines[:5]
    assert any("config changed" in str(p.get("log_format", "")) for p in parsed)
