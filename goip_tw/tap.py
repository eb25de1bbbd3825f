"""``twistd goip``: command-line options and the service maker.

Command-line options override the config file for this run only; they are not
written back, so a script can start the gateway on ephemeral ports without
touching the user's configuration.
"""

from __future__ import annotations

import os
import sys

from twisted.python import usage

from goip_tw import __version__
from goip_tw.config import schema
from goip_tw.config.manager import ConfigManager


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("goip-tw: a GSM/LTE-to-VoIP gateway. With no modems configured it runs on "
                "simulated lines, so it works on any machine.")
    optParameters = [
        ["config", "c", None, "Config file (TOML). Default: <data-dir>/goip.toml."],
        ["data-dir", "d", None, "Data directory (config, SQLite store). Default: ./goip-data."],
        ["simulate", None, None, "Run N simulated modules (overrides modems config).", int],
        ["web-port", None, None, "HTTP port for the web UI and APIs (0 = any free port).", int],
        ["sip-port", None, None, "SIP port (UDP and TCP; 0 = any free port).", int],
        ["smpp-port", None, None, "SMPP SMSC port (0 = any free port).", int],
        ["bind", None, "127.0.0.1", "Address every service listens on."],
        ["log-format", None, None, "Log format: text or json."],
    ]

    def opt_version(self):
        print(f"goip-tw {__version__}")
        sys.exit(0)

    def postOptions(self):
        if self["log-format"] not in (None, "text", "json"):
            raise usage.UsageError("--log-format must be text or json")
        self["data-dir"] = os.path.abspath(self["data-dir"] or "goip-data")
        self["config"] = os.path.abspath(
            self["config"] or os.path.join(self["data-dir"], "goip.toml"))

    def overrides(self) -> dict:
        """The config overlay built from the command line."""
        o: dict = {}

        def put(section, key, value):
            if value is not None:
                o.setdefault(section, {})[key] = value

        put("web", "port", self["web-port"])
        put("web", "bind", self["bind"])
        put("sip", "local_port", self["sip-port"])
        put("sip", "bind_address", self["bind"])
        put("smpp", "port", self["smpp-port"])
        put("smpp", "interface", self["bind"])
        put("simulator", "modules", self["simulate"])
        if self["simulate"] is not None:
            put("simulator", "enabled", "on")
        put("logging", "format", self["log-format"])
        return _known_only(o)


def _known_only(overlay: dict) -> dict:
    """Drop overrides for sections/keys that this build does not have."""
    import attrs

    out = {}
    for sec, values in overlay.items():
        cls = schema.SECTIONS.get(sec)
        if cls is None:
            continue
        names = {f.name for f in attrs.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        if kept:
            out[sec] = kept
    return out


def makeService(options: Options):
    from twisted.internet import reactor

    from goip_tw.gateway import GatewayService

    os.makedirs(options["data-dir"], exist_ok=True)
    try:
        manager = ConfigManager(options["config"], options.overrides())
        manager.save_if_missing()
    except schema.ConfigErrors as e:
        lines = "\n".join(f"  {err}" for err in e.errors)
        raise SystemExit(f"goip: the configuration has {len(e.errors)} problem(s):\n{lines}")
    return GatewayService(manager, options["data-dir"], reactor=reactor)
