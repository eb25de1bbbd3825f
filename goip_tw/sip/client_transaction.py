"""RFC 3261 §17.1 client transactions (ICT and NICT); see ``transaction.py`` for
the layer that creates them and the contracts."""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.sip.message import Request, Response, SipParseError, split_commas

log = Logger()

MAGIC = "z9hG4bK"


def _via_key(raw_via: str):
    """(branch, sent-by, transport) of the top Via, without a full parse."""
    top = split_commas(raw_via)[0] if "," in raw_via else raw_via
    head, _, params = top.partition(";")
    branch = None
    i = params.find("branch=")
    if i >= 0:
        j = i + 7
        end = len(params)
        for sep in (";", " ", "\t"):
            k = params.find(sep, j)
            if 0 <= k < end:
                end = k
        branch = params[j:end]
    parts = head.split()
    if len(parts) < 2:
        parts = " ".join(head.split("/")).split()
        if len(parts) < 4:
            raise SipParseError("via", f"bad Via {top[:60]!r}")
        return branch, parts[-1].lower(), parts[-2].upper()
    return branch, parts[-1].lower(), parts[0].rpartition("/")[2].strip().upper()


class _Transaction:
    __slots__ = ("layer", "request", "key", "state", "reliable", "_timers")

    def _start_timer(self, delay, fn, *args):
        entry = self.layer._sched.call_later(delay, fn, *args)
        self._timers.append(entry)
        return entry

    def _stop_timers(self):
        sched = self.layer._sched
        for e in self._timers:
            sched.cancel(e)
        self._timers = []


class ClientTransaction(_Transaction):
    """ICT or NICT (§17.1.1, §17.1.2)."""

    __slots__ = ("dest", "data", "result", "on_provisional", "on_2xx", "interval",
                 "timed_out", "is_invite", "_cancel_wanted", "_retransmit", "_ack_data",
                 "_cancel_sent")

    def __init__(self, layer, request, dest, on_provisional, on_2xx):
        self.layer = layer
        self.request = request
        self.dest = dest
        self.reliable = dest.transport in ("tcp", "tls")
        self.on_provisional = on_provisional
        self.on_2xx = on_2xx
        self.result = defer.Deferred()
        self.timed_out = False
        self.is_invite = request.method == "INVITE"
        self._cancel_wanted = None
        self._timers = []
        self._retransmit = None
        self._cancel_sent = False
        self.state = "calling" if self.is_invite else "trying"
        branch = request.headers.get("via")
        self.key = (_via_key(branch)[0], request.method)
        self.data = request.to_bytes()

    def _start(self):
        t = self.layer.timers
        if not self.reliable:
            self.interval = t.t1
            self._retransmit = self._start_timer(t.t1, self._timer_a_e)
        if self.is_invite:
            self._start_timer(t.b, self._timeout, "B")
        else:
            self._start_timer(t.f, self._timeout, "F")
        self._send(self.data)

    def _send(self, data):
        d = self.layer.transport.send(data, self.dest)
        if d is not None:
            d.addErrback(self._transport_error)

    def _transport_error(self, failure):
        if self.state in ("calling", "trying", "proceeding"):
            log.info("transport error for {method} to {dest}: {error}",
                     method=self.request.method, dest=str(self.dest),
                     error=failure.getErrorMessage())
            self._deliver_final(self.request.make_response(503, "Service Unavailable"))
            self._terminate()

    def _timer_a_e(self):
        """Timer A (ICT, doubling) or E (NICT, capped at T2; T2 once proceeding)."""
        if self.state not in ("calling", "trying", "proceeding"):
            return
        if self.is_invite and self.state != "calling":
            return
        self._send(self.data)
        t2 = self.layer.timers.t2
        if self.is_invite:
            self.interval *= 2
        elif self.state == "proceeding":
            self.interval = t2
        else:
            self.interval = min(self.interval * 2, t2)
        self._retransmit = self._start_timer(self.interval, self._timer_a_e)

    def _timeout(self, name):
        if self.state in ("calling", "trying") or (
                not self.is_invite and self.state == "proceeding"):
            log.info("Timer {timer} fired for {method} to {dest}", timer=name,
                     method=self.request.method, dest=str(self.dest))
            self.timed_out = True
            self._deliver_final(self.request.make_response(408, "Request Timeout"))
            self._terminate()

    def response_received(self, response: Response):
        status = response.status
        state = self.state
        if status < 200:
            if state in ("calling", "trying", "proceeding"):
                if state != "proceeding" and self._retransmit is not None and (
                        self.is_invite):
                    self.layer._sched.cancel(self._retransmit)
                self.state = "proceeding"
                if self._cancel_wanted is not None:
                    self._send_cancel()
                if self.on_provisional is not None:
                    self.on_provisional(response)
            return
        if self.is_invite:
            if 200 <= status < 300:
                if state in ("calling", "proceeding"):
                    self._stop_timers()
                    self.state = "accepted"
                    self._start_timer(64 * self.layer.timers.t1, self._terminate)
                    self._deliver_final(response)
                elif state == "accepted" and self.on_2xx is not None:
                    self.on_2xx(response)
                return
            if state in ("calling", "proceeding"):
                self._stop_timers()
                self.state = "completed"
                self._ack_data = self._make_ack(response).to_bytes()
                self._send(self._ack_data)
                self._deliver_final(response)
                delay = 0 if self.reliable else self.layer.timers.timer_d
                if delay:
                    self._start_timer(delay, self._terminate)
                else:
                    self._terminate()
            elif state == "completed":
                self._send(self._ack_data)
            return
        if state in ("trying", "proceeding"):
            self._stop_timers()
            self.state = "completed"
            self._deliver_final(response)
            if self.reliable:
                self._terminate()
            else:
                self._start_timer(self.layer.timers.t4, self._terminate)

    def _cancel_expired(self):
        if self.state == "proceeding":
            log.info("no final response to a cancelled INVITE to {dest}",
                     dest=str(self.dest))
            self.timed_out = True
            self._deliver_final(self.request.make_response(408, "Request Timeout"))
            self._terminate()

    def _derived(self, method: str, to: str) -> Request:
        """ACK for a non-2xx (§17.1.1.3) or CANCEL (§9.1): the INVITE's top Via,
        Route, From, Call-ID and CSeq number."""
        req = self.request
        h = [("via", split_commas(req.headers.get("via"))[0])]
        h += [("route", v) for v in req.headers.get_all("route")]
        h += [("max-forwards", "70"), ("from", req.headers.get("from")), ("to", to),
              ("call-id", req.headers.get("call-id")), ("cseq", f"{req.cseq[0]} {method}")]
        return Request(method, req.uri, h)

    def _make_ack(self, response: Response) -> Request:
        return self._derived("ACK", response.headers.get("to"))

    def _deliver_final(self, response):
        if not self.result.called:
            self.result.callback(response)
        wanted = self._cancel_wanted
        if wanted is not None and not wanted.called and not self._cancel_sent:
            wanted.callback(None)  # nothing left to cancel

    def _terminate(self):
        self._stop_timers()
        self.state = "terminated"
        self.layer._clients.pop(self.key, None)

    # -- CANCEL (§9.1) ----------------------------------------------------

    def cancel(self) -> defer.Deferred:
        """Cancel a pending INVITE; fires with the CANCEL's final response.

        A CANCEL goes out only after a provisional response (§9.1); if the INVITE
        completes first, fires with ``None``.
        """
        if not self.is_invite:
            raise ValueError("only INVITE transactions can be cancelled")
        if self._cancel_wanted is None:
            self._cancel_wanted = defer.Deferred()
            if self.state == "proceeding":
                self._send_cancel()
            elif self.state not in ("calling",):
                self._cancel_wanted.callback(None)
        return self._cancel_wanted

    def _send_cancel(self):
        wanted = self._cancel_wanted
        if wanted.called or self._cancel_sent:
            return
        self._cancel_sent = True
        cancel = self._derived("CANCEL", self.request.headers.get("to"))
        # §9.1: without a final response 64*T1 after the CANCEL, give up on the INVITE
        self._start_timer(64 * self.layer.timers.t1, self._cancel_expired)
        txn = self.layer._start_client(cancel, self.dest, None, None, add_via=False)
        txn.result.addCallback(lambda r: wanted.called or wanted.callback(r))
