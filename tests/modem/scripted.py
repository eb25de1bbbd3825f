"""A scripted modem on a StringTransport + Clock, for transcript tests written by us
from the vendor manuals (Huawei is not in the simulator)."""

from __future__ import annotations

import re

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from goip_tw.modem import at
from goip_tw.modem.api import Modem

BASE = {
    "ATE0": "OK",
    "AT+CMGF=0": "OK",
    "AT+CPIN?": "+CPIN: READY\r\n\r\nOK",
    "AT+CIMI": "262019876543210\r\n\r\nOK",
    "AT+CNUM": '+CNUM: "","+4915112345678",145\r\n\r\nOK',
    "AT+CSQ": "+CSQ: 17,99\r\n\r\nOK",
    "AT+CLCC": "OK",
}


class ScriptedTransport(StringTransport):
    def __init__(self, script, clock):
        super().__init__()
        self.script = script
        self.clock = clock
        self.sent = []
        self.protocol = None

    def write(self, data):
        super().write(data)
        text = data.decode("latin-1")
        for cmd in [c for c in re.split(r"[\r\x1a]", text) if c]:
            self.sent.append(cmd)
            reply = self.script.get(cmd)
            if reply is None:
                reply = next((v for k, v in self.script.items()
                              if k.endswith("*") and cmd.startswith(k[:-1])), None)
            if reply is None:
                reply = "OK" if cmd.upper().startswith("AT") else self.script.get("<data>", "OK")
            if callable(reply):
                reply = reply(cmd)
            if reply is not None:
                self.clock.callLater(0.001, self.protocol.dataReceived,
                                     b"\r\n" + reply.encode("latin-1") + b"\r\n")

    def urc(self, text):
        self.protocol.dataReceived(b"\r\n" + text.encode("latin-1") + b"\r\n")


def make(identity, script=None):
    """``identity`` = (CGMI, CGMM); returns (modem, transport, clock)."""
    clock = Clock()
    full = dict(BASE)
    full.update({"AT+CGMI": f"{identity[0]}\r\n\r\nOK", "AT+CGMM": f"{identity[1]}\r\n\r\nOK",
                 "AT+CGMR": "Revision: TEST01\r\n\r\nOK", "AT+CGSN": "356938035643809\r\n\r\nOK"})
    full.update(script or {})
    engine = at.AtEngine(clock, name="scripted")
    t = ScriptedTransport(full, clock)
    t.protocol = engine
    engine.makeConnection(t)
    modem = Modem(engine, clock, name="scripted")
    return modem, t, clock


def settle(clock, steps=50, step=0.01):
    """Let scripted replies (each 1 ms later) and follow-up commands play out."""
    for _ in range(steps):
        clock.advance(step)


def run(d, clock, limit=2000, step=0.01):
    """Advance the Clock until ``d`` fires; return its result or raise its failure."""
    out = []
    d.addBoth(out.append)
    for _ in range(limit):
        if out:
            break
        clock.advance(step)
    assert out, "deferred did not fire"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]
