"""The Klein application: status pages and the JSON API.

Routes are methods of :class:`WebApp`, which is given the gateway, so handlers reach
config, store and subsystems without globals.  Subsystems contribute routes by
exposing ``web_resources()`` -> ``{path_prefix: resource}``; they are mounted under
their prefix (e.g. the GoIP-compatible ``/default/en_US/`` SMS endpoints).
"""

from __future__ import annotations

import html
import json
import os
import time

from klein import Klein

from goip_tw import __version__
from goip_tw.config import schema
from goip_tw.web import auth

def _web_dir() -> str:
    """Templates and static files: ``web/`` beside the package in a source tree or an
    editable install, else ``<prefix>/share/goip-tw/web`` where setup.py puts them."""
    import sys

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "web")
    for candidate in (here, os.path.join(sys.prefix, "share", "goip-tw", "web")):
        if os.path.isdir(os.path.join(candidate, "templates")):
            return candidate
    return here


WEB_DIR = _web_dir()


def _template(name: str) -> str:
    with open(os.path.join(WEB_DIR, "templates", name), encoding="utf-8") as f:
        return f.read()


def _json(request, data, code: int = 200):
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")


class WebApp:
    app = Klein()

    def __init__(self, gateway):
        self.gateway = gateway
        self.last_login = None

    def _auth(self, request, needed="admin"):
        level = auth.authenticate(request, self.gateway.config.users, needed)
        if level is not None:
            self.last_login = time.time()
        return level

    def _lines(self) -> list[dict]:
        modems = self.gateway.subsystem("modems")
        if modems is None or not hasattr(modems, "lines_json"):
            return []
        return modems.lines_json()

    @app.route("/health", methods=["GET"])
    def health(self, request):
        return _json(request, self.gateway.health())

    @app.route("/", methods=["GET"])
    def status_page(self, request):
        if self._auth(request, "sms") is None:
            return b"login required"
        rows = []
        for line in self._lines():
            cells = [line.get(k, "") for k in ("line", "state", "sim_slot", "technology",
                                                 "signal", "operator", "number", "imei")]
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        body = _template("status.html").format(
            name=html.escape(self.gateway.config.general.name),
            version=html.escape(__version__),
            uptime=int(self.gateway.health()["uptime"]),
            rows="\n".join(rows) or '<tr><td colspan="8">No lines yet.</td></tr>',
        )
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return body.encode("utf-8")

    @app.route("/api/lines", methods=["GET"])
    def api_lines(self, request):
        if self._auth(request, "admin") is None:
            return _json(request, {"error": "login required"}, request.code)
        return _json(request, self._lines())

    @app.route("/api/schema", methods=["GET"])
    def api_schema(self, request):
        level = self._auth(request, "sms")
        if level is None:
            return _json(request, {"error": "login required"}, request.code)
        from goip_tw.config.model import GatewayConfig

        items = [s for s in schema.describe(GatewayConfig) if schema.visible_to(level, s["level"])]
        return _json(request, items)

    @app.route("/api/config", methods=["GET"])
    def api_config(self, request):
        if self._auth(request, "admin") is None:
            return _json(request, {"error": "login required"}, request.code)
        return _json(request, _redact(self.gateway.config))

    @app.route("/api/events", methods=["GET"])
    def api_events(self, request):
        if self._auth(request, "admin") is None:
            return _json(request, {"error": "login required"}, request.code)
        d = self.gateway.event_log.recent(100)
        return d.addCallback(lambda rows: _json(request, [dict(r) for r in rows]))

    @app.route("/static/", branch=True)
    def static(self, request):
        from twisted.web.static import File

        return File(os.path.join(WEB_DIR, "static"))


def _redact(config) -> dict:
    import attrs

    def walk(obj):
        out = {}
        for f in attrs.fields(type(obj)):
            v = getattr(obj, f.name)
            meta = schema.info(f)
            if meta is not None and meta.secret:
                out[f.name] = "********"
            elif attrs.has(type(v)):
                out[f.name] = walk(v)
            elif isinstance(v, tuple):
                out[f.name] = [walk(x) if attrs.has(type(x)) else x for x in v]
            else:
                out[f.name] = v
        return out

    return walk(config)
