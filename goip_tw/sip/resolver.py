"""Server location (RFC 3263 without NAPTR): SRV, then A/AAAA, via ``twisted.names``.

``SipResolver(resolver).resolve(uri, transport=None) -> Deferred[list[Address]]``
in the order to try them; IP literals are returned as they are.  Each address
carries ``name`` (the domain a TLS certificate must match, RFC 5922).
"""

from __future__ import annotations

from twisted.internet import defer

from goip_tw.sip.transport import DEFAULT_PORTS, Address, _is_ip


class SipResolver:
    """RFC 3263 server location without NAPTR: SRV, then A (twisted.names)."""

    SRV = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}

    def __init__(self, resolver):
        self.resolver = resolver

    @defer.inlineCallbacks
    def resolve(self, uri, transport: str | None = None):
        """-> Deferred[list[Address]] in the order to try them."""
        transport = transport or uri.transport
        host = uri.host.strip("[]")
        if _is_ip(host):
            return [Address(transport, host, uri.port or DEFAULT_PORTS[transport])]
        if uri.port is None:
            try:
                answers, _, _ = yield self.resolver.lookupService(self.SRV[transport] + host)
            except Exception:
                answers = []
            srvs = sorted((a.payload for a in answers if a.type == 33),
                          key=lambda p: (p.priority, -p.weight))
            out = []
            for srv in srvs:
                target = str(srv.target.name, "ascii") if isinstance(
                    srv.target.name, bytes) else str(srv.target)
                try:
                    ip = yield self.resolver.getHostByName(target)
                except Exception:
                    continue
                out.append(Address(transport, ip, srv.port, name=host))
            if out:
                return out
        ip = yield self.resolver.getHostByName(host)
        return [Address(transport, ip, uri.port or DEFAULT_PORTS[transport], name=host)]
