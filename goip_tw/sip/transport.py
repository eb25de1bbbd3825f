"""SIP transports: UDP, TCP and TLS on 127.0.0.1 or any address (RFC 3261 §18).

Public API (stable):

- ``Address(transport, host, port)``: where a message came from or goes to;
  ``transport`` is ``"udp"``, ``"tcp"`` or ``"tls"``.
- ``TransportLayer(reactor, config=SipConfig(), tls_options=None, rng=None)``:
  ``start()`` listens (fixed port or random in a range, F-420), ``stop()``
  closes everything.  ``message_received(message, source)`` is the upward hook
  (the transaction layer sets it).  ``send(message, dest)`` returns ``None``
  for UDP and a ``Deferred`` for streams (errback when the connection fails);
  ``send_response(response, source)`` picks the reply path (§18.2.2, RFC 3581,
  F-423).  ``sent_by(transport)`` is the host/port for our Via headers.
- ``goip_tw.sip.resolver.SipResolver``: RFC 3263 server location (SRV, A).
- ``KeepAlive(clock, send, interval)``: NAT keep-alive (F-426).

Incoming requests get ``received``/``rport`` added to their top Via (RFC 3581
§4).  Unparseable requests with enough headers to answer get a 400 naming the
bad field; anything else is dropped with a log line.  Stream framing uses
Content-Length (§18.3); a message larger than ``MAX_MESSAGE`` closes the
connection.
"""

from __future__ import annotations

import os
import random
import socket

import attrs
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.config.sections.sip import SipConfig
from goip_tw.sip.message import (MAX_MESSAGE, Headers, Request, Response,
                                 SipParseError, Via, parse_message, split_commas)

log = Logger()

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
RELIABLE = frozenset({"tcp", "tls"})


@attrs.frozen
class Address:
    """``name``: the domain a TLS certificate must match (RFC 5922), if not ``host``."""

    transport: str
    host: str
    port: int
    name: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def set_dscp(sock, dscp: int) -> None:
    """Mark outgoing signalling with a DSCP (F-428) via IP_TOS / IPV6_TCLASS."""
    if not dscp:
        return
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, dscp << 2)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)
    except OSError as e:
        log.warn("cannot set DSCP {dscp}: {error}", dscp=dscp, error=e)


def _answer_bad_request(data: bytes, error: SipParseError):
    """Build a 400 for a request we could not parse, if it names enough headers."""
    if data.startswith(b"SIP/"):
        return None
    head = data.split(b"\r\n\r\n", 1)[0]
    first, _, rest = head.partition(b"\r\n")
    if b"SIP/2.0" not in first.upper() and error.field != "version":
        return None
    try:
        headers = Headers._lazy(rest.decode("utf-8", "replace"))
        items = headers.items()
    except SipParseError:
        return None
    out = Headers()
    for key in ("via", "from", "to", "call-id", "cseq"):
        vals = [v for k, v in items if k == key]
        if not vals:
            return None
        for v in vals:
            if key == "to" and ";tag=" not in v.replace(" ", "").lower():
                v = f"{v};tag={os.urandom(4).hex()}"
            out.add(key, v)
    status = 505 if error.field == "version" else 400
    reason = "Version Not Supported" if status == 505 else (
        f"Bad Request ({error.field})")
    return Response(status, reason, out)


class _Receiver:
    """What UDP and stream protocols share: parse, stamp Via, hand upwards."""

    def __init__(self, layer: "TransportLayer"):
        self.layer = layer

    def handle(self, data: bytes, source: Address) -> None:
        layer = self.layer
        try:
            msg = parse_message(data)
            if type(msg) is Request:
                _stamp_via(msg, source)
        except SipParseError as e:
            log.info("dropping bad SIP message from {source}: {field}: {detail}",
                     source=str(source), field=e.field, detail=e.detail)
            reply = _answer_bad_request(data, e)
            if reply is not None:
                layer.send_response(reply, source)
            return
        try:
            layer.message_received(msg, source)
        except Exception:
            log.failure("SIP message from {source} crashed its handler",
                        source=str(source))


def _stamp_via(msg: Request, source: Address) -> None:
    """RFC 3261 §18.2.1 ``received`` and RFC 3581 ``rport`` on the top Via."""
    raw = msg.headers.get("via")
    if raw is None:
        raise SipParseError("via", "missing Via")
    vals = split_commas(raw) if "," in raw else [raw]
    top = vals[0]
    if ";rport" not in top and "received" not in top:
        sent_by = top.split(";", 1)[0].split()[-1]
        host = sent_by.rsplit(":", 1)[0] if sent_by.count(":") == 1 else sent_by
        if host == source.host:
            return
    i = top.find(";rport")
    j = i + 6
    if i >= 0 and "received" not in top and (j == len(top) or top[j] in "; \t") and (
            top.count(";rport") == 1):
        vals[0] = f"{top[:j]}={source.port};received={source.host}{top[j:]}"
        _replace_top_via(msg, vals)
        return
    via = Via.parse(top)
    changed = False
    if via.host != source.host or via.received not in (None, source.host):
        via = via.with_param("received", source.host)
        changed = True
    if via.wants_rport:
        via = via.with_param("rport", str(source.port))
        if via.received is None:
            via = via.with_param("received", source.host)
        changed = True
    if changed:
        vals[0] = str(via)
        _replace_top_via(msg, vals)


def _replace_top_via(msg, vals) -> None:
    items = msg.headers._load()
    for i, (k, v) in enumerate(items):
        if k == "via":
            items[i] = ("via", ", ".join(vals) if len(vals) > 1 else vals[0])
            break


def _via_reply(raw: str, source: Address) -> Address | None:
    """§18.2.2/RFC 3581 destination from a plain top Via; None for odd ones."""
    top = split_commas(raw)[0] if "," in raw else raw
    head, _, params = top.partition(";")
    parts = head.split()
    if len(parts) != 2 or "[" in head or not parts[0].upper().startswith("SIP/2.0/"):
        return None
    host, colon, port = parts[1].partition(":")
    received = rport = None
    wants_rport = False
    if params:
        for p in params.split(";"):
            k, eq, v = p.partition("=")
            k = k.strip().lower()
            if k == "received":
                received = v.strip()
            elif k == "rport":
                wants_rport = True
                v = v.strip()
                if v:
                    if not v.isdigit() or not v.isascii() or len(v) > 5:
                        return None
                    rport = int(v)
    if rport:
        return Address(source.transport, received or host, rport)
    if received and wants_rport:
        return Address(source.transport, received, source.port)
    if colon:
        if not port.isdigit() or not port.isascii() or len(port) > 5:
            return None
        return Address(source.transport, received or host, int(port))
    return Address(source.transport, received or host, DEFAULT_PORTS.get(source.transport, 5060))


class _Datagram(protocol.DatagramProtocol):
    def __init__(self, layer: "TransportLayer", name: str = "udp"):
        self.receiver = _Receiver(layer)

    def datagramReceived(self, data, addr):
        if len(data) < 8 and not data.strip(b"\r\n\x00 "):
            return  # keep-alive (F-426) or padding
        self.receiver.handle(data, Address("udp", addr[0], addr[1]))


@implementer(IHandshakeListener)
class _Stream(protocol.Protocol):
    """Content-Length framing on TCP/TLS (§18.3), CRLF keep-alives (RFC 5626 §3.5.1).

    For TLS connections we open, ``handshake`` fires once the server's
    certificate checked out, and fails if the connection drops before that.
    """

    def __init__(self, layer: "TransportLayer", name: str, client: bool = False):
        self.layer = layer
        self.name = name
        self.receiver = _Receiver(layer)
        self.buffer = b""
        self.peer: Address | None = None
        self.handshake = defer.Deferred() if (client and name == "tls") else None
        self._crlf = 0

    def handshakeCompleted(self):
        if self.handshake is not None and not self.handshake.called:
            self.handshake.callback(self)

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = Address(self.name, peer.host, peer.port)
        self.layer._connection_made(self)
        try:
            set_dscp(self.transport.getHandle(), self.layer.config.dscp)
        except (AttributeError, OSError):
            pass

    def connectionLost(self, reason=protocol.connectionDone):
        self.layer._connection_lost(self)
        if self.handshake is not None and not self.handshake.called:
            self.handshake.errback(reason)

    def dataReceived(self, data):
        self.buffer += data
        buf = self.buffer
        for _ in range(len(buf) // 2 + 1):  # every pass consumes at least 2 bytes
            if not buf:
                break
            if buf[:1] in (b"\r", b"\n"):
                stripped = buf.lstrip(b"\r\n")
                self._crlf += len(buf) - len(stripped)
                if self._crlf >= 4:  # a CRLFCRLF ping, maybe split across reads
                    self.transport.write(b"\r\n")  # pong
                    self._crlf = 0
                buf = stripped
                continue
            self._crlf = 0
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_MESSAGE:
                    return self._overflow()
                break
            length = _stream_content_length(buf[:end])
            if length is None:
                log.info("bad Content-Length on {peer}; closing", peer=str(self.peer))
                self.transport.loseConnection()
                self.buffer = b""
                return
            total = end + 4 + length
            if total > MAX_MESSAGE:
                return self._overflow()
            if len(buf) < total:
                break
            frame, buf = buf[:total], buf[total:]
            self.receiver.handle(frame, self.peer)
        self.buffer = buf

    def _overflow(self):
        log.info("message from {peer} exceeds {limit} bytes; closing",
                 peer=str(self.peer), limit=MAX_MESSAGE)
        self.buffer = b""
        self.transport.loseConnection()

    def send(self, data: bytes) -> None:
        self.transport.write(data)


def _stream_content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            return int(value) if value.isdigit() and value.isascii() and len(value) < 7 else None
    return 0


class _StreamFactory(protocol.Factory):
    def __init__(self, layer, name, client: bool = False):
        self.layer = layer
        self.name = name
        self.client = client

    def buildProtocol(self, addr):
        return _Stream(self.layer, self.name, self.client)


class TransportLayer:
    """All listening sockets plus the pool of stream connections."""

    def __init__(self, reactor, config: SipConfig | None = None, tls_options=None,
                 client_tls_options=None, rng: random.Random | None = None):
        self.reactor = reactor
        self.config = config or SipConfig()
        self.tls_options = tls_options
        self.client_tls_options = client_tls_options
        self.rng = rng or random.Random()
        self.ports: dict[str, int] = {}
        self._listeners = []
        self._udp = None
        self._connections: dict[tuple, _Stream] = {}
        self._pending: dict[tuple, list] = {}
        self._connecting: dict[tuple, defer.Deferred] = {}
        self.message_received = lambda message, source: None
        self.advertised_host = None
        self._ip_hosts: set[str] = set()

    # -- life cycle ------------------------------------------------------

    def start(self) -> None:
        """Listen on the configured port, or a random free one in the range."""
        cfg = self.config
        if cfg.local_port:
            self._listen(cfg.local_port)
        else:
            lo, hi = cfg.random_ports()
            for _ in range(64):
                try:
                    self._listen(self.rng.randint(lo, hi))
                    break
                except OSError:
                    self._close_listeners()
            else:
                raise OSError(f"no free SIP port in {cfg.random_port_range}")
        if cfg.tls and self.tls_options is None:
            log.warn("sip.tls is on but no certificate is configured "
                     "(sip.tls_certificate): not listening for TLS")
        if cfg.tls and self.tls_options is not None:
            base = self.ports.get("udp") or self.ports.get("tcp")
            port = self.reactor.listenSSL(cfg.tls_port or base + 1,
                                          _StreamFactory(self, "tls"),
                                          self.tls_options,
                                          interface=cfg.bind_address)
            self._listeners.append(port)
            self.ports["tls"] = port.getHost().port

    def _listen(self, port: int) -> None:
        cfg = self.config
        from twisted.internet.error import CannotListenError
        try:
            if cfg.udp:
                # Twisted reads at most 8192 bytes of a datagram unless told otherwise
                self._udp = self.reactor.listenUDP(port, _Datagram(self),
                                                   interface=cfg.bind_address,
                                                   maxPacketSize=65536)
                self._listeners.append(self._udp)
                port = self.ports["udp"] = self._udp.getHost().port
                set_dscp(self._udp.socket, cfg.dscp)
            if cfg.tcp:
                tcp = self.reactor.listenTCP(port, _StreamFactory(self, "tcp"),
                                             interface=cfg.bind_address)
                self._listeners.append(tcp)
                self.ports["tcp"] = tcp.getHost().port
        except CannotListenError as e:
            raise OSError(str(e)) from e

    def _close_listeners(self):
        ds = [defer.maybeDeferred(p.stopListening) for p in self._listeners]
        self._listeners = []
        self.ports = {}
        self._udp = None
        return defer.DeferredList(ds)

    def stop(self) -> defer.Deferred:
        for conn in list(self._connections.values()):
            conn.transport.abortConnection()
        for d in list(self._connecting.values()):
            d.cancel()
        return self._close_listeners()

    # -- addressing ------------------------------------------------------

    def sent_by(self, transport: str) -> tuple[str, int]:
        host = self.advertised_host or self.config.bind_address
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        port = self.ports.get(transport) or self.ports.get("udp") or 5060
        return host, port

    def response_destination(self, response: Response, source: Address) -> Address:
        """§18.2.2 + RFC 3581, or the packet source when F-423 says so.

        Over TCP/TLS the reply uses the request's connection while it is open;
        once closed, a new one goes to the Via's received/sent-by port (§18.2.2).
        """
        if source.reliable:
            if (source.transport, source.host, source.port) in self._connections:
                return source
            try:
                via = response.top_via
            except SipParseError:
                return source
            return Address(source.transport, via.received or via.host,
                           via.port or DEFAULT_PORTS.get(source.transport, 5060))
        if self.config.reply_path == "source":
            return source
        raw = response.headers.get("via")
        if raw is None:
            return source
        fast = _via_reply(raw, source)
        if fast is not None:
            return fast
        try:
            via = response.top_via
        except SipParseError:
            return source
        host = via.received or via.host
        if via.rport:
            port = via.rport
        elif via.received and via.wants_rport:
            port = source.port
        else:
            port = via.port or DEFAULT_PORTS.get(source.transport, 5060)
        return Address(source.transport, host, port)

    # -- sending ---------------------------------------------------------

    def send_response(self, response: Response, source: Address):
        """Send a stateless response; a failed stream connection is only logged."""
        dest = self.response_destination(response, source)
        d = self.send(response, dest)
        if d is not None:
            d.addErrback(lambda f: log.info("cannot send {status} to {dest}: {error}",
                                            status=response.status, dest=str(dest),
                                            error=f.getErrorMessage()))
        return d

    def send(self, message, dest: Address):
        data = message if isinstance(message, bytes) else message.to_bytes()
        if dest.transport == "udp":
            if self._udp is None:
                raise OSError("UDP transport not listening")
            host = dest.host
            if host not in self._ip_hosts:
                if not _is_ip(host):
                    # never let sendto() resolve a name: that would block the reactor
                    log.info("UDP send to {dest} needs an IP address", dest=str(dest))
                    return None
                if len(self._ip_hosts) > 4096:
                    self._ip_hosts.clear()
                self._ip_hosts.add(host)
            try:
                self._udp.socket.sendto(data, (host, dest.port))
            except OSError as e:  # EAGAIN (full buffer), EMSGSIZE, unreachable
                log.info("UDP send to {dest} failed: {error}", dest=str(dest), error=e)
            return None
        return self._send_stream(data, dest)

    def _send_stream(self, data: bytes, dest: Address) -> defer.Deferred:
        """Write on the open connection, or queue behind one being opened."""
        key = (dest.transport, dest.host, dest.port)
        conn = self._connections.get(key)
        if conn is not None:
            conn.send(data)
            return defer.succeed(None)
        result = defer.Deferred()
        waiters = self._pending.get(key)
        if waiters is None:
            waiters = self._pending[key] = []
            d = self._connecting[key] = self._connect(dest)
            d.addCallbacks(self._connected, self._connect_failed,
                           callbackArgs=(key,), errbackArgs=(key, dest))
        waiters.append((data, result))
        return result

    def _connected(self, proto, key) -> None:
        self._connecting.pop(key, None)
        for data, result in self._pending.pop(key, []):
            proto.send(data)
            result.callback(None)

    def _connect_failed(self, failure, key, dest) -> None:
        self._connecting.pop(key, None)
        log.info("cannot connect to {dest}: {error}", dest=str(dest),
                 error=failure.getErrorMessage())
        for _, result in self._pending.pop(key, []):
            result.errback(failure)

    def _connect(self, dest: Address) -> defer.Deferred:
        factory = _StreamFactory(self, dest.transport, client=True)
        if dest.transport == "tls":
            opts = self._client_tls(dest)
            ep = SSL4ClientEndpoint(self.reactor, dest.host, dest.port, opts, timeout=10)
        elif dest.transport == "tcp":
            ep = TCP4ClientEndpoint(self.reactor, dest.host, dest.port, timeout=10)
        else:
            return defer.fail(ValueError(f"unknown transport {dest.transport!r}"))
        d = ep.connect(factory)
        if dest.transport == "tls":
            d.addCallback(lambda proto: proto.handshake)
        return d

    def _client_tls(self, dest: Address):
        """Verify the server (F-428) against the CA file or the platform store."""
        if self.client_tls_options is not None:
            return self.client_tls_options
        from twisted.internet import ssl
        if not self.config.tls_verify_peer:
            log.warn("TLS to {dest} without certificate verification", dest=str(dest))
            return ssl.CertificateOptions(verify=False)
        if self.config.tls_ca_file:
            with open(self.config.tls_ca_file, "rb") as f:
                trust = ssl.Certificate.loadPEM(f.read())
        else:
            trust = ssl.platformTrust()
        return ssl.optionsForClientTLS(dest.name or dest.host, trustRoot=trust)

    def _connection_made(self, conn: _Stream) -> None:
        p = conn.peer
        self._connections[(p.transport, p.host, p.port)] = conn

    def _connection_lost(self, conn: _Stream) -> None:
        p = conn.peer
        if p is not None and self._connections.get((p.transport, p.host, p.port)) is conn:
            del self._connections[(p.transport, p.host, p.port)]

    @property
    def connections(self) -> int:
        return len(self._connections)


def tls_server_options(config: SipConfig):
    """Server-side TLS options from the PEM files in the config, or None."""
    if not (config.tls and config.tls_certificate):
        return None
    from twisted.internet import ssl
    with open(config.tls_certificate, "rb") as f:
        cert = f.read()
    key = cert
    if config.tls_private_key:
        with open(config.tls_private_key, "rb") as f:
            key = f.read()
    return ssl.PrivateCertificate.loadPEM(cert + b"\n" + key).options()


def _is_ip(host: str) -> bool:
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, host)
            return True
        except OSError:
            pass
    return False


class KeepAlive:
    """Send a NAT keep-alive every ``interval`` seconds (F-426, RFC 5626 §4.4.1).

    ``send()`` is called each period: a CRLF datagram sender or an OPTIONS
    transaction, chosen by the caller.
    """

    def __init__(self, clock, send, interval: float):
        from twisted.internet.task import LoopingCall
        self._loop = LoopingCall(send)
        self._loop.clock = clock
        self.interval = interval

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: log.failure("keep-alive failed", f))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    @staticmethod
    def crlf_sender(transport_layer: TransportLayer, dest: Address):
        def send():
            transport_layer.send(b"\r\n\r\n", dest)
        return send


def __getattr__(name):
    # ``SipResolver`` moved to resolver.py (which imports this module); keep the
    # old import path working without a circular import.
    if name == "SipResolver":
        from goip_tw.sip.resolver import SipResolver
        return SipResolver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
