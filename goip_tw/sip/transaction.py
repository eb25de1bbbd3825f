"""RFC 3261 §17 transactions (with the RFC 6026 "Accepted" states) on an injected clock.

Public API (stable; the upper SIP layer builds on it)::

    layer = TransactionLayer(transport, clock, timers=Timers.from_config(cfg))
    layer.request_received = tu_on_request        # (ServerTransaction) -> None
    layer.ack_received = tu_on_ack                # (Request, Address) -> None; ACK for 2xx
    layer.stray_response = tu_on_stray            # (Response, Address) -> None

    d = layer.send_request(request, dest, on_provisional=cb)   # Deferred[Response]
    txn = layer.start_client(request, dest, on_provisional=cb, on_2xx=cb2)
    txn.result            # Deferred[Response]: the first final response
    txn.cancel()          # Deferred[Response] of the CANCEL (INVITE only, §9.1)
    layer.send_ack(ack_request, dest)  # ACK for a 2xx: new branch, no transaction

    def tu_on_request(txn):                 # txn: ServerTransaction
        txn.request, txn.source             # Request, transport.Address
        txn.respond(txn.request.make_response(200))
        txn.on_cancel = ...                 # INVITE: called when a CANCEL matched;
                                            # if unset, the layer answers 487 itself

``transport`` is a ``goip_tw.sip.transport.TransportLayer`` (or anything with its
``send``, ``send_response``, ``sent_by`` and ``message_received`` members).

Contracts:

- ``send_request`` adds a top Via with a fresh ``z9hG4bK`` branch and ``rport``
  (RFC 3581); it fills nothing else.  The Deferred always fires with a
  ``Response``: a timeout (Timer B/F) yields a locally made 408 and a transport
  failure a 503 (RFC 3263 §4.3); ``txn.timed_out`` tells them apart.
- Final responses are passed up once; retransmissions are absorbed; the ICT ACKs
  300-699 itself (§17.1.1.3).  2xx ACKs and 2xx retransmissions belong to the
  dialog layer (§13.3.1.4); the ICT stays in Accepted for 64*T1 and hands extra
  2xx to ``on_2xx`` (RFC 6026 §7.2).
- Server transactions match on branch + sent-by + method (§17.2.3), with the
  RFC 2543 fallback key for requests without the magic cookie.  A CANCEL is
  answered 200 (or 481 if nothing matched) by the layer (§9.2).
- Timers (names as in RFC 3261 Table 4): A, B, D, E, F, G, H, I, J, K, plus L
  and M from RFC 6026; durations come from ``Timers`` (T1, T2, T4, Timer B and
  F timeouts from config, F-431).  Over reliable transports A/E/G are not run
  and D/I/J/K are zero.  ``txn.on_ack_timeout`` is called when Timer H fires.
- Robustness (not in RFC 3261): a TU that raises gets its request answered 500;
  a non-INVITE nobody answers within 64*T1 is dropped; at most
  ``max_server_transactions`` exist at once: completed non-INVITE ones are
  evicted oldest first, then new requests get a stateless 503 + Retry-After
  (§21.5.4).  ``layer.stop()`` cancels everything (shutdown, tests).

Timers run through ``timers._Scheduler`` (one clock call per distinct delay, a
deque of deadlines behind it); Timer J of the many completed non-INVITE server
transactions a flood leaves behind runs on a FIFO of plain tuples instead, so
they cost one DelayedCall and no objects for the cyclic GC.
"""

from __future__ import annotations

import collections
import os

from twisted.logger import Logger

from goip_tw.sip.client_transaction import (MAGIC, ClientTransaction,  # noqa: F401
                                            _Transaction, _via_key)
from goip_tw.sip.message import Request, Response, SipParseError
from goip_tw.sip.timers import Timers, _Scheduler  # noqa: F401  (Timers is public here)
from goip_tw.sip.transport import Address

log = Logger()

class ServerTransaction(_Transaction):
    """IST or NIST (§17.2.1, §17.2.2)."""

    __slots__ = ("source", "last", "dest", "on_cancel", "is_invite", "interval",
                 "on_ack_timeout")

    def __init__(self, layer, request, source, key):
        self.layer = layer
        self.request = request
        self.source = source
        self.key = key
        self.reliable = source.transport in ("tcp", "tls")
        self.is_invite = request.method == "INVITE"
        self.state = "proceeding" if self.is_invite else "trying"
        self.last = None
        self.dest = None
        self.on_cancel = None
        self.on_ack_timeout = None
        self._timers = []
        if not self.is_invite:
            layer._arm_nist(key)

    @property
    def final_sent(self) -> bool:
        return self.state not in ("trying", "proceeding")

    def respond(self, response: Response) -> None:
        """Send ``response`` and advance the state machine; late calls are ignored."""
        state = self.state
        if state not in ("trying", "proceeding"):
            log.debug("response {status} after final on {method} ignored",
                      status=response.status, method=self.request.method)
            return
        layer = self.layer
        data = response.to_bytes()
        if self.dest is None:
            self.dest = layer.transport.response_destination(response, self.source)
        self.last = data
        if self.reliable:
            self._send(data)
        else:
            layer.transport.send(data, self.dest)
        status = response.status
        t = layer.timers
        if status < 200:
            self.state = "proceeding"
            return
        if self.is_invite:
            if status < 300:
                self.state = "accepted"
                self._start_timer(64 * t.t1, self._terminate)
                return
            self.state = "completed"
            if not self.reliable:
                self.interval = t.t1
                self._start_timer(t.t1, self._timer_g)
            self._start_timer(t.h, self._timer_h)
            return
        self.state = "completed"
        if self.reliable:
            self._terminate()  # Timer J is zero
        else:
            # Timer J: the layer keeps only what absorbing retransmissions needs
            d = self.dest
            layer._servers[self.key] = (data, (d.transport, d.host, d.port),
                                        layer.clock.seconds())
            layer._completed.append(self.key)

    def _send(self, data: bytes) -> None:
        d = self.layer.transport.send(data, self.dest)
        if d is not None:
            d.addErrback(lambda f: log.info(
                "cannot send {status} to {dest}: {error}", status=data[8:11].decode(),
                dest=str(self.dest), error=f.getErrorMessage()))

    def _retransmit(self):
        if self.last is not None:
            self._send(self.last)

    def request_retransmitted(self):
        if self.state in ("proceeding", "completed"):
            self._retransmit()

    def _timer_g(self):
        if self.state != "completed":
            return
        self._retransmit()
        self.interval = min(self.interval * 2, self.layer.timers.t2)
        self._start_timer(self.interval, self._timer_g)

    def _timer_h(self):
        if self.state == "completed":
            log.info("Timer H: no ACK for {status} to {source}",
                     status=self.last[8:11].decode(), source=str(self.source))
            self._terminate()
            if self.on_ack_timeout is not None:
                self.on_ack_timeout()

    def ack_received(self):
        if self.state == "completed":
            self._stop_timers()
            self.state = "confirmed"
            if self.reliable:
                self._terminate()
            else:
                self._start_timer(self.layer.timers.t4, self._terminate)  # Timer I

    def _terminate(self):
        self._stop_timers()
        self.state = "terminated"
        self.layer._servers.pop(self.key, None)


class TransactionLayer:
    """Matches messages to transactions and owns every timer."""

    def __init__(self, transport, clock, timers: Timers | None = None,
                 strict: bool = True, max_server_transactions: int = 100_000):
        self.max_server_transactions = max_server_transactions
        self._completed = collections.deque(maxlen=max_server_transactions)
        self._nist_queue: collections.deque = collections.deque()
        self._nist_call = None
        self._overload_logged = -1e9
        self.transport = transport
        self.clock = clock
        self.timers = timers or Timers()
        self.strict = strict
        self._sched = _Scheduler(clock)
        self._clients: dict[tuple, ClientTransaction] = {}
        self._servers: dict[tuple, ServerTransaction] = {}
        self._branch_prefix = MAGIC + os.urandom(5).hex()
        self._branch_count = 0
        self.request_received = self._default_request_received
        self.ack_received = lambda request, source: None
        self.stray_response = lambda response, source: None
        transport.message_received = self.message_received

    # -- client side -----------------------------------------------------

    def new_branch(self) -> str:
        self._branch_count += 1
        return f"{self._branch_prefix}.{self._branch_count:x}"

    def new_tag(self) -> str:
        self._branch_count += 1
        return f"{self._branch_prefix[7:]}{self._branch_count:x}"

    def _via(self, dest) -> str:
        host, port = self.transport.sent_by(dest.transport)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # RFC 5118 §4.5
        return (f"SIP/2.0/{dest.transport.upper()} {host}:{port};"
                f"branch={self.new_branch()};rport")

    def send_request(self, request: Request, dest, on_provisional=None):
        """Start a client transaction; Deferred[Response] of its final response."""
        return self.start_client(request, dest, on_provisional).result

    def start_client(self, request: Request, dest, on_provisional=None,
                     on_2xx=None) -> ClientTransaction:
        return self._start_client(request, dest, on_provisional, on_2xx, add_via=True)

    def _start_client(self, request, dest, on_provisional, on_2xx, add_via):
        if add_via:
            request.headers.add("via", self._via(dest), first=True)
        txn = ClientTransaction(self, request, dest, on_provisional, on_2xx)
        self._clients[txn.key] = txn
        txn._start()
        return txn

    def send_ack(self, ack: Request, dest) -> None:
        """Send an ACK for a 2xx (§13.2.2.4): its own branch, no transaction."""
        ack.headers.add("via", self._via(dest), first=True)
        self.transport.send(ack, dest)

    # -- dispatch --------------------------------------------------------

    def message_received(self, msg, source) -> None:
        try:
            if type(msg) is Response:
                self._response_received(msg, source)
            else:
                self._request_received(msg, source)
        except SipParseError as e:
            log.info("bad SIP message from {source}: {field}: {detail}",
                     source=str(source), field=e.field, detail=e.detail)
            if type(msg) is Request and msg.method != "ACK":
                self._reply_400(msg, source, e)

    def _reply_400(self, request, source, error):
        try:
            resp = request.make_response(400, f"Bad Request ({error.field})",
                                         to_tag=self.new_tag())
            self.transport.send_response(resp, source)
        except SipParseError:
            pass

    def _response_received(self, response: Response, source) -> None:
        raw = response.headers.get("via")
        if raw is None:
            raise SipParseError("via", "missing Via")
        branch = _via_key(raw)[0]
        method = response.cseq[1]
        txn = self._clients.get((branch, method))
        if txn is None:
            self.stray_response(response, source)
        else:
            txn.response_received(response)

    def _request_received(self, request: Request, source) -> None:
        raw = request.headers.get("via")
        if raw is None:
            raise SipParseError("via", "missing Via")
        branch, sent_by, _ = _via_key(raw)
        method = request.method
        if self.strict:
            request.validate()
        else:
            cseq_method = request.cseq[1]
            if cseq_method != method:
                raise SipParseError("cseq", "CSeq method does not match")
        if branch and branch.startswith(MAGIC):
            base = (branch, sent_by)
        else:
            base = ("2543", request.call_id, request.from_.tag, request.cseq[0],
                    str(request.uri), sent_by)
        lookup = "INVITE" if method == "ACK" else method
        key = base + (lookup,)
        txn = self._servers.get(key)
        if method == "ACK":
            if type(txn) is ServerTransaction and txn.is_invite and txn.state in (
                    "completed", "confirmed"):
                txn.ack_received()
            else:
                self.ack_received(request, source)
            return
        if txn is not None:
            if type(txn) is tuple:  # completed non-INVITE: replay the final response
                self.transport.send(txn[0], Address(*txn[1]))
            else:
                txn.request_retransmitted()
            return
        if method == "CANCEL":
            self._cancel_received(request, source, base, key)
            return
        if len(self._servers) >= self.max_server_transactions:
            self._evict()
            if len(self._servers) >= self.max_server_transactions:
                self._overloaded(request, source)
                return
        txn = ServerTransaction(self, request, source, key)
        self._servers[key] = txn
        try:
            self.request_received(txn)
        except Exception:
            log.failure("TU failed on {method} from {source}", method=method,
                        source=str(source))
            if not txn.final_sent:
                txn.respond(request.make_response(500, to_tag=self.new_tag()))
            return
        if txn.is_invite and txn.state == "proceeding" and txn.last is None:
            txn.respond(request.make_response(100))

    # -- non-INVITE server transaction expiry ------------------------------
    #
    # Completed non-INVITE server transactions (UDP) are stored as plain tuples
    # ``(response bytes, (transport, host, port), completed at)`` and expire
    # through one FIFO of ``(deadline, key)`` tuples: a flood of OPTIONS or
    # REGISTER then leaves no objects for the cyclic GC to walk, and ~1 KB per
    # request for 64*T1 (Timer J).

    def _arm_nist(self, key, delay: float | None = None) -> None:
        if delay is None:
            delay = 64 * self.timers.t1
        self._nist_queue.append((self.clock.seconds() + delay, key))
        if self._nist_call is None:
            self._nist_call = self.clock.callLater(delay, self._drain_nist)

    def _drain_nist(self) -> None:
        self._nist_call = None
        queue = self._nist_queue
        now = self.clock.seconds() + 1e-9
        for _ in range(len(queue)):
            if queue[0][0] > now:
                break
            self._nist_expire(queue.popleft()[1])
        if queue and self._nist_call is None:
            self._nist_call = self.clock.callLater(
                max(0.0, queue[0][0] - self.clock.seconds()), self._drain_nist)

    def _nist_expire(self, key) -> None:
        """64*T1 after a non-INVITE arrived: Timer J (extended to 64*T1 after the
        final response; a later one may wait behind it, J being a minimum), or the
        TU never answered and the transaction is dropped."""
        entry = self._servers.get(key)
        if entry is None:
            return
        if type(entry) is tuple:
            left = entry[2] + 64 * self.timers.t1 - self.clock.seconds()
            if left > 0.001:
                self._arm_nist(key, left)
            else:
                del self._servers[key]
            return
        if entry.state in ("trying", "proceeding"):
            log.warn("no response to {method} from {source} within 64*T1; "
                     "dropping the transaction", method=entry.request.method,
                     source=str(entry.source))
            entry._terminate()

    def _evict(self) -> None:
        """Under a flood, completed NISTs (kept only to absorb retransmissions)
        make room for new requests, oldest first."""
        dq, servers = self._completed, self._servers
        for _ in range(64):
            if len(servers) < self.max_server_transactions or not dq:
                break
            key = dq.popleft()
            if type(servers.get(key)) is tuple:
                del servers[key]

    def _overloaded(self, request, source) -> None:
        """§21.5.4: 503 + Retry-After, statelessly, once the table is full."""
        now = self.clock.seconds()
        if now - self._overload_logged > 10:
            self._overload_logged = now
            log.warn("{count} server transactions: refusing new requests with 503",
                     count=len(self._servers))
        if request.method != "ACK":
            resp = request.make_response(503, to_tag=self.new_tag())
            resp.headers.add("retry-after", "5")
            self.transport.send_response(resp, source)

    def _cancel_received(self, request, source, base, key):
        """§9.2: answer the CANCEL, then let the TU (or us) answer 487."""
        nist = ServerTransaction(self, request, source, key)
        self._servers[key] = nist
        invite = self._servers.get(base + ("INVITE",))
        if invite is None or invite.state == "terminated":
            nist.respond(request.make_response(481, to_tag=self.new_tag()))
            return
        nist.respond(request.make_response(200))
        if invite.state == "proceeding":
            if invite.on_cancel is not None:
                invite.on_cancel()
            else:
                invite.respond(invite.request.make_response(487, to_tag=self.new_tag()))

    def _default_request_received(self, txn: ServerTransaction) -> None:
        txn.respond(txn.request.make_response(501, to_tag=self.new_tag()))

    # -- life cycle ------------------------------------------------------

    def stop(self) -> None:
        """Drop every transaction and cancel every timer (tests, shutdown)."""
        self._sched.stop()
        if self._nist_call is not None and self._nist_call.active():
            self._nist_call.cancel()
        self._nist_call = None
        self._nist_queue.clear()
        for txn in list(self._clients.values()):
            txn.state = "terminated"
        self._clients.clear()
        self._servers.clear()

    @property
    def counts(self) -> tuple[int, int]:
        return len(self._clients), len(self._servers)
