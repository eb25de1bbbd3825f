"""The GoIP "SMS server" UDP protocol, device side (F-492), one client per line.

So existing GoIP SMS servers work with us unchanged.  Field order follows the
GoIP SMS interface document as the public server implementations read it
(node-goip, GoIPSms):

* keep-alive every ``keepalive`` seconds: ``req:<n>;id:<id>;pass:<pw>;num:<own
  number>;signal:<0-31>;gsm_status:LOGIN|LOGOUT;voip_status:LOGOUT;voip_state:IDLE;
  remain_time:-1;imei:<imei>;imsi:<imsi>;iccid:<iccid>;pro:<operator>;`` answered by
  ``reg:<n>;status:200;`` (``req:`` accepted too).  The server learns our address
  from it and sends its commands there.
* events, each repeated until acknowledged ``<CMD> <recvid> OK``:
  ``RECEIVE:<recvid>;id:<id>;password:<pw>;srcnum:<number>;msg:<text>`` and
  ``DELIVER:<recvid>;id:<id>;password:<pw>;sms_no:<sms_no>;state:<0 ok|1 failed>;num:<n>``.
* sending: ``MSG <sendid> <length> <text>`` -> ``PASSWORD <sendid>``;
  ``PASSWORD <sendid> <pw>`` -> ``SEND <sendid>``; ``SEND <sendid> <telid> <number>``
  -> ``OK <sendid> <telid> <sms_no>`` once the SMS is stored (durable), ``WAIT`` while
  it is being stored, ``ERROR <sendid> <telid> <reason>``; ``DONE <sendid>`` ->
  ``DONE <sendid>``.  A repeated SEND for the same telid never queues a second SMS.

Every datagram is bounded (``MAX_DATAGRAM``) and parsed defensively; a wrong
password gets ``ERROR <sendid> wrong password`` and a log line.
"""

from __future__ import annotations

import hmac
import ipaddress
import itertools

import attrs
from twisted.application import service
from twisted.internet import protocol
from twisted.logger import Logger

from goip_tw.sms.model import State, Submission

MAX_DATAGRAM = 4096
MAX_SENDS = 256  # open MSG batches kept per line
EVENT_RETRY = 5.0
EVENT_ATTEMPTS = 12


@attrs.define
class _Batch:
    text: str
    authorised: bool = False
    telids: dict = attrs.field(factory=dict)  # telid -> sms_no | None (storing)


def _fields(payload: str) -> dict[str, str]:
    out = {}
    for item in payload.split(";"):
        key, sep, value = item.partition(":")
        if sep:
            out[key.strip()] = value
    return out


class GoipLineClient(protocol.DatagramProtocol):
    """One line's connection to the SMS server (the GoIP "channel" ID)."""

    log = Logger()

    def __init__(self, line: int, client_id: str, password: str, server: tuple[str, int],
                 queue, clock, status=lambda: {}, keepalive: float = 30.0):
        self.line = line
        self.client_id = client_id
        self.password = password
        self.server = server
        self.queue = queue
        self.clock = clock
        self.status = status
        self.keepalive = keepalive
        self.registered = False
        self._req = itertools.count(1)
        self._recvid = itertools.count(int(clock.seconds()) % 100000 + 1)
        self._batches: dict[str, _Batch] = {}
        self._events: dict[str, tuple[bytes, int, object]] = {}
        self._keepalive_call = None
        self._messages: dict[int, str] = {}  # our message id -> telid (DELIVER num)
        self._unsubscribe = queue.subscribe(self._on_event)

    # -- life cycle ------------------------------------------------------------------

    def startProtocol(self):
        self._send_keepalive()

    def stopProtocol(self):
        if self._keepalive_call is not None and self._keepalive_call.active():
            self._keepalive_call.cancel()
        self._keepalive_call = None
        for _, _, call in self._events.values():
            if call.active():
                call.cancel()
        self._events.clear()
        self._unsubscribe()

    def _write(self, text: str) -> None:
        if self.transport is not None:
            self.transport.write(text.encode("utf-8"), self.server)

    def _send_keepalive(self):
        st = self.status() or {}
        fields = [
            ("req", next(self._req)), ("id", self.client_id), ("pass", self.password),
            ("num", st.get("own_number") or ""), ("signal", st.get("signal") or 0),
            ("gsm_status", "LOGIN" if st.get("state") == "registered" else "LOGOUT"),
            ("voip_status", "LOGOUT"), ("voip_state", "IDLE"), ("remain_time", -1),
            ("imei", st.get("imei") or ""), ("imsi", st.get("imsi") or ""),
            ("iccid", st.get("iccid") or ""), ("pro", st.get("operator") or "")]
        self._write("".join(f"{k}:{v};" for k, v in fields))
        self._keepalive_call = self.clock.callLater(self.keepalive, self._send_keepalive)

    # -- incoming datagrams ------------------------------------------------------------

    def datagramReceived(self, data: bytes, addr):
        if addr[0] != self.server[0] or len(data) > MAX_DATAGRAM:
            self.log.warn("goip sms server: datagram from {addr} ignored", addr=addr)
            return
        try:
            text = data.decode("utf-8").strip("\r\n\x00 ")
        except UnicodeDecodeError:
            self.log.warn("goip sms server: undecodable datagram from {addr}", addr=addr)
            return
        if text.startswith(("reg:", "req:")):
            f = _fields(text)
            self.registered = f.get("status", "").strip() == "200"
            if not self.registered:
                self.log.warn("goip sms server refused {id}: status {status}",
                              id=self.client_id, status=f.get("status"))
            return
        cmd, _, rest = text.partition(" ")
        handler = getattr(self, f"_cmd_{cmd.upper()}", None)
        if handler is None:
            self.log.warn("goip sms server: unknown command {cmd!r}", cmd=cmd[:20])
            return
        handler(rest)

    def _cmd_MSG(self, rest: str):
        sendid, _, tail = rest.partition(" ")
        length, _, msg = tail.partition(" ")
        if not sendid or not length.isdigit():
            self.log.warn("goip sms server: MSG without sendid/length")
            return
        if sendid not in self._batches and len(self._batches) >= MAX_SENDS:
            self._batches.pop(next(iter(self._batches)))
        self._batches[sendid] = _Batch(msg)
        self._write(f"PASSWORD {sendid}")

    def _cmd_PASSWORD(self, rest: str):
        sendid, _, pw = rest.partition(" ")
        batch = self._batches.get(sendid)
        if batch is None:
            self._write(f"ERROR {sendid} no message")
            return
        if not hmac.compare_digest(pw.encode(), self.password.encode()):
            self.log.warn("auth failure: service=goip-sms user={user} address={host}",
                          user=self.client_id, host=self.server[0])
            self._write(f"ERROR {sendid} wrong password")
            return
        batch.authorised = True
        self._write(f"SEND {sendid}")

    def _cmd_SEND(self, rest: str):
        parts = rest.split(" ")
        if len(parts) < 3:
            self._write(f"ERROR {parts[0] if parts else ''} bad SEND")
            return
        sendid, telid, number = parts[0], parts[1], parts[2]
        batch = self._batches.get(sendid)
        if batch is None or not batch.authorised:
            self._write(f"ERROR {sendid} {telid} not authorised")
            return
        if telid in batch.telids:
            sms_no = batch.telids[telid]
            self._write(f"WAIT {sendid} {telid}" if sms_no is None else f"OK {sendid} {telid} {sms_no}")
            return
        batch.telids[telid] = None
        d = self.queue.submit(Submission(recipient=number, text=batch.text, source="goip",
                                         source_ref=f"{self.client_id}|{telid}|{number}",
                                         line=self.line))

        def stored(acc):
            batch.telids[telid] = acc.message
            self._messages[acc.message] = number
            self._write(f"OK {sendid} {telid} {acc.message}")

        def refused(f):
            batch.telids.pop(telid, None)
            self.log.warn("goip sms server SEND {sendid}/{telid} refused: {error}",
                          sendid=sendid, telid=telid, error=f.getErrorMessage())
            self._write(f"ERROR {sendid} {telid} {f.getErrorMessage()[:60]}")
        d.addCallbacks(stored, refused)

    def _cmd_DONE(self, rest: str):
        sendid = rest.strip()
        self._batches.pop(sendid, None)
        self._write(f"DONE {sendid}")

    def _cmd_RECEIVE(self, rest):
        self._ack(rest)

    _cmd_DELIVER = _cmd_RECEIVE

    def _ack(self, rest: str):
        recvid, _, ok = rest.partition(" ")
        entry = self._events.pop(recvid, None)
        if entry is not None and entry[2].active():
            entry[2].cancel()

    # -- events to the server ----------------------------------------------------------------

    def _event(self, kind: str, body: str) -> None:
        recvid = str(next(self._recvid))
        packet = f"{kind}:{recvid};id:{self.client_id};password:{self.password};{body}"
        self._events[recvid] = (packet.encode("utf-8"), 0, None)
        self._push(recvid)

    def _push(self, recvid: str) -> None:
        packet, attempts, _ = self._events[recvid]
        if attempts >= EVENT_ATTEMPTS:
            self.log.warn("goip sms server never acknowledged event {recvid}", recvid=recvid)
            del self._events[recvid]
            return
        if self.transport is not None:
            self.transport.write(packet, self.server)
        call = self.clock.callLater(EVENT_RETRY, self._push, recvid)
        self._events[recvid] = (packet, attempts + 1, call)

    def sms_received(self, msg) -> None:
        """IReceivedSmsObserver: forward this line's received SMS (F-492 RECEIVE)."""
        if getattr(msg, "line", None) != self.line:
            return
        text = msg.text.replace("\r", " ").replace("\n", " ")
        self._event("RECEIVE", f"srcnum:{msg.sender};msg:{text}")

    def _on_event(self, event) -> None:
        if event.source != "goip" or event.seq is not None:
            return
        if not event.source_ref.startswith(self.client_id + "|"):
            return
        if event.state in (State.DELIVERED, State.FAILED, State.EXPIRED):
            number = event.source_ref.rsplit("|", 1)[-1]
            state = 0 if event.state is State.DELIVERED else 1
            self._event("DELIVER", f"sms_no:{event.message};state:{state};num:{number}")


class GoipSmsService(service.Service):
    """Opens one UDP socket per line (distinct ports, so the server can tell lines apart)."""

    log = Logger()

    def __init__(self, sms, cfg, reactor):
        self.sms = sms
        self.cfg = cfg
        self.reactor = reactor
        self.clients: list[GoipLineClient] = []
        self._ports = []

    def startService(self):
        super().startService()
        host = self.cfg.server_host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            # A name: resolve once (datagrams from the server are matched by address).
            d = self.reactor.resolve(host)
            d.addCallbacks(self._open, lambda f: self.log.error(
                "goip sms server {host} not resolved: {error}", host=host,
                error=f.getErrorMessage()))
            return
        self._open(host)

    def _open(self, address: str) -> None:
        if not self.running:
            return
        modems = self.sms.gateway.subsystem("modems")
        lines = [ls.number for ls in getattr(modems, "lines", ())] or [1]
        many = len(lines) > 1
        for n in lines:
            client_id = f"{self.cfg.server_id}{n}" if many else self.cfg.server_id

            def status(n=n):
                ls = modems.line(n) if modems is not None else None
                return ls.status() if ls is not None else {}
            client = GoipLineClient(n, client_id, self.cfg.server_password,
                                    (address, self.cfg.server_port),
                                    self.sms.queue, self.reactor, status,
                                    float(self.cfg.server_keepalive))
            self.sms.add_received_observer(client)
            self._ports.append(self.reactor.listenUDP(0, client))
            self.clients.append(client)

    def stopService(self):
        super().stopService()
        for port in self._ports:
            port.stopListening()
        self._ports.clear()
        self.clients.clear()


def build_client(sms, cfg, reactor):
    return GoipSmsService(sms, cfg, reactor)
