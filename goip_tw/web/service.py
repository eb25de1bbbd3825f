"""The web service: the Klein app in a Site on a strports endpoint."""

from __future__ import annotations

from twisted.application import internet
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Site

from goip_tw.web.app import WebApp


class WebService(internet.StreamServerEndpointService):
    """Serves the web app; announces the URL and login once listening."""

    def __init__(self, gateway, endpoint):
        super().__init__(endpoint, None)
        self.gateway = gateway
        self.port = None

    def privilegedStartService(self):
        # Built at start, once every other subsystem exists to mount its routes.
        if self.factory is None:
            self.factory = build_site(self.gateway)
        super().privilegedStartService()

    def startService(self):
        super().startService()
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port):
        self.port = port
        addr = port.getHost()
        host = addr.host if ":" not in addr.host else f"[{addr.host}]"
        self.gateway.announce(f"web: http://{host}:{addr.port}/  login: admin / "
                              f"{'admin (default: change it)' if self.gateway.config.users.admin_password == 'admin' else '(your admin password)'}")
        return port


def build_site(gateway) -> Site:
    webapp = WebApp(gateway)
    root = webapp.app.resource()
    mounts = {}
    for svc in gateway:
        provider = getattr(svc, "web_resources", None)
        if provider is not None:
            mounts.update(provider())
    if mounts:
        outer = _Mounts(root, mounts)
        site = Site(outer)
    else:
        site = Site(root)
    site.displayTracebacks = False
    site.webapp = webapp
    return site


class _Mounts(Resource):
    """Dispatches a few path prefixes to subsystem resources, the rest to Klein."""

    def __init__(self, default, mounts):
        super().__init__()
        self.default = default
        self.mounts = {k.strip("/").encode(): v for k, v in mounts.items()}

    def getChildWithDefault(self, name, request):
        if name in self.mounts:
            return self.mounts[name]
        request.postpath.insert(0, request.prepath.pop())
        return self.default

    def render(self, request):
        return self.default.render(request)


def build_service(gateway):
    cfg = gateway.config.web
    reactor = gateway.reactor
    if ":" in cfg.bind:
        endpoint = TCP6ServerEndpoint(reactor, cfg.port, interface=cfg.bind)
    else:
        endpoint = TCP4ServerEndpoint(reactor, cfg.port, interface=cfg.bind)
    return WebService(gateway, endpoint)
