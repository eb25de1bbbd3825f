"""The try-it-now demo as a script sees it: `twistd -n goip --simulate 2 --smpp-port 0`
prints `smpp: system_id=ID password=PASSWORD port=PORT` and `sms echo number: NUMBER`;
an ESME that binds with them gets its SMS echoed back as deliver_sm."""

import os
import re
import select
import signal
import subprocess
import sys
import time

import smpplib.client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_smpp_account_echoes(tmp_path):
    args = [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=", "goip",
            "--data-dir", str(tmp_path / "data"), "--web-port", "0", "--sip-port", "0",
            "--smpp-port", "0",
            "--simulate", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=str(tmp_path))
    try:
        out, creds, echo = b"", None, None
        deadline = time.monotonic() + 60
        while (creds is None or echo is None) and time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 0.5)
            if r:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, out.decode(errors="replace")[-2000:]
                out += chunk
            text = out.decode(errors="replace")
            m = re.search(r"^smpp: system_id=(\S+) password=(\S+) port=(\d+)$", text, re.M)
            creds = m.groups() if m else None
            m = re.search(r"^sms echo number: (\S+)$", text, re.M)
            echo = m.group(1) if m else None
        assert creds and echo, out.decode(errors="replace")[-2000:]
        system_id, password, port = creds
        c = smpplib.client.Client("127.0.0.1", int(port), timeout=30,
                                  allow_unknown_opt_params=True)
        c.connect()
        c.bind_transceiver(system_id=system_id, password=password)
        c.send_message(source_addr="demo", destination_addr=echo, short_message=b"echo me")
        got = None
        for _ in range(20):
            p = c.read_pdu()
            if p.command == "submit_sm_resp":
                assert p.status == 0, p.status  # accepted at once, even right after start
            if p.command == "deliver_sm":
                resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=c)
                resp.sequence = p.sequence
                c.send_pdu(resp)
                got = p
                break
        c.unbind()
        c.disconnect()
        assert got is not None and got.short_message == b"echo me"
        assert got.source_addr.decode() == echo
    except Exception:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[0]
        (tmp_path / "twistd.out").write_bytes(out + rest)
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
