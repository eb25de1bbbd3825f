"""Find a module by its IMEI (F-103: "identified by IMEI, USB path or by-id").

A line configured with ``port = "imei:<15 digits>"`` has no fixed device path: the
line probes the AT-capable links in ``scan_dir`` (normally ``/dev/serial/by-id``)
with ``AT+CGSN`` (TS 27.007 §5.4) and binds to the one that answers with its IMEI.
Ports other lines already hold are skipped; the scan is sequential and bounded
(at most ``MAX_CANDIDATES`` links, ``timeout`` seconds each).
"""

from __future__ import annotations

import os
import re

from twisted.internet import defer

from goip_tw.modem import at

PREFIX = "imei:"
MAX_CANDIDATES = 64


def imei_key(port: str) -> str | None:
    """The IMEI of an ``imei:`` port key, else None."""
    return port[len(PREFIX):] if port.startswith(PREFIX) else None


@defer.inlineCallbacks
def probe_imei(clock, path: str, opener, timeout: float = 1.0):
    """IMEI of the module on ``path``, or None (not a modem, busy, no answer)."""
    engine = at.AtEngine(clock, name=f"probe:{os.path.basename(path)}",
                         timeouts={"quick": timeout, "default": timeout, "late_grace": 0.05})
    closed = defer.Deferred()
    engine.add_close_observer(lambda r: closed.callback(None) if not closed.called else None)
    try:
        opener(path, engine)
    except Exception:
        return None
    try:
        try:
            # ESC first: a module stranded at "> " answers nothing else
            if (yield engine.resync(probes=1)):
                yield engine.send("ATE0", kind="quick")
        except at.AtError:
            pass
        resp = yield engine.send("AT+CGSN", kind="quick")
        digits = re.sub(r"\D", "", " ".join(resp.lines))
        return digits[:15] if len(digits) >= 14 else None
    except at.AtError:
        return None
    finally:
        if engine.connected:
            engine.close()
            timer = clock.callLater(2.0, lambda: closed.callback(None) if not closed.called else None)
            yield closed
            if timer.active():
                timer.cancel()


@defer.inlineCallbacks
def find_by_imei(clock, imei: str, directory: str, opener, *, skip=(), timeout: float = 1.0):
    """Path in ``directory`` whose module reports ``imei``, or None."""
    if not os.path.isdir(directory):
        return None
    skip_real = {os.path.realpath(p) for p in skip}
    names = sorted(os.listdir(directory))[:MAX_CANDIDATES]
    for name in names:
        path = os.path.join(directory, name)
        if path in skip or os.path.realpath(path) in skip_real or not os.path.exists(path):
            continue
        found = yield probe_imei(clock, path, opener, timeout)
        if found == imei:
            return path
    return None
