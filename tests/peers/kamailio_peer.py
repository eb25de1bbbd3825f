"""Kamailio registrar/proxy peer (tests/peers/kamailio/registrar.cfg); see harness.py."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.peers.peerutil import (HERE, LOOPBACK, _stop_pid, free_port, require_binary,
                                  sip_options_ping)

KAMAILIO_CFG = HERE / "kamailio" / "registrar.cfg"
KAMAILIO_REALM = "goip.test"


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
