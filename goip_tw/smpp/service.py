"""The SMSC behind the SMPP protocol: accounts, submits into the SMS queue,
delivery receipts and received SMS as deliver_sm (F-407).

Accounts (F-407): one system ID and password; the ID itself binds for the whole
device, the ID with a two-digit line number appended (``101``, ``102``… for ID
``1``) binds for one line: its submits leave through that line and it only gets
that line's received SMS.  Repeated bind failures from one address block that
address for a while (SPEC §7 lockout), answered with ESME_RBINDFAIL.

Receipts follow SMPP 3.4 Appendix B (text ``id:… sub:… dlvrd:… submit date:…
done date:… stat:… err:… text:…``) with the §5.3.2.12/§5.3.2.35 TLVs
``receipted_message_id`` and ``message_state``.  They are sent once the message
is final, with the state combined over all its parts: one receipt for a message
the gateway split itself, and for a message the client split (UDH or sar_ TLVs)
one per submitted part that asked for a receipt (ESMEs such as Kannel ask on the
first part only).
"""

from __future__ import annotations

import hmac
import os
import secrets
import string

import attrs
from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.sms.model import EncodeError, State, Submission, encode_data_coding
from goip_tw.sms.queue import NotReady, QueueFull
from goip_tw.sms.repository import DuplicateFragment
from goip_tw.sms.router import RouteError
from goip_tw.smpp import pdu as P
from goip_tw.smpp.protocol import (Account, ISmscBackend, SmppError, SmppSettings, SmscFactory,
                                   format_smpp_date)

_STAT = {State.DELIVERED: ("DELIVRD", P.DELIVERED), State.FAILED: ("UNDELIV", P.UNDELIVERABLE),
         State.EXPIRED: ("EXPIRED", P.EXPIRED), State.CANCELLED: ("DELETED", P.DELETED)}
_QUERY_STATE = {State.ASSEMBLING: P.ENROUTE, State.QUEUED: P.ENROUTE, State.SENDING: P.ENROUTE,
                State.SENT: P.ENROUTE, State.DELIVERED: P.DELIVERED, State.FAILED: P.UNDELIVERABLE,
                State.EXPIRED: P.EXPIRED, State.CANCELLED: P.DELETED}
_RETRYABLE = {P.ESME_RTHROTTLED, 0x64, P.ESME_RMSGQFUL, P.ESME_RSYSERR}


@attrs.define
class _Delivery:
    want: object  # callable(Account) -> bool
    build: object  # callable(Account) -> (params, tlvs)
    what: str
    attempts: int = 0
    not_before: float = 0.0
    history_id: int | None = None  # received SMS: its sms_history row


_DELIVERABLE = ("received", "incomplete")  # sms_history states of plain received SMS


def _mo_cursor_start(conn, limit: int):
    """(cursor, rows after it).  A new store starts at the newest received SMS."""
    row = conn.execute("SELECT last_id FROM smpp_mo_cursor WHERE name = 'mo'").fetchone()
    if row is None:
        last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM sms_history"
                            " WHERE direction = 'in'").fetchone()[0]
        conn.execute("INSERT INTO smpp_mo_cursor (name, last_id) VALUES ('mo', ?)", (last,))
        return last, []
    rows = conn.execute(
        "SELECT id, line, peer, text FROM sms_history WHERE direction = 'in' AND id > ?"
        " AND state IN (?, ?) ORDER BY id LIMIT ?", (row[0], *_DELIVERABLE, limit)).fetchall()
    return row[0], [tuple(r) for r in rows]


def _mo_cursor_advance(conn, last: int) -> None:
    conn.execute("UPDATE smpp_mo_cursor SET last_id = ? WHERE name = 'mo' AND last_id < ?",
                 (last, last))


def parse_message_id(message_id: str) -> tuple[int, int | None]:
    head, _, seq = message_id.partition(".")
    if not head.isdigit() or (seq and not seq.isdigit()) or len(message_id) > 64:
        raise SmppError(P.ESME_RINVMSGID, f"message_id {message_id!r}")
    return int(head), int(seq) if seq else None


@implementer(ISmscBackend)
class SmscBackend:
    log = Logger()

    def __init__(self, queue, clock, system_id: str, password: str, lines=lambda: 32,
                 line_number=None, bind_failures: int = 5, bind_block: float = 300.0,
                 retry_interval: float = 30.0, max_pending: int = 10000,
                 default_alphabet: str = "gsm7", store=None):
        self.queue = queue
        self.store = store  # with a store, received SMS survive restarts (smpp_mo_cursor)
        self._mo_open: set[int] = set()  # history ids not yet acknowledged by a client
        self._mo_seen = 0
        self._mo_cursor = 0
        self.clock = clock
        self.system_id = system_id
        self.password = password
        self.lines = lines
        self.line_number = line_number  # callable(line) -> own number or None (option off)
        self.bind_failures = bind_failures
        self.bind_block = bind_block
        self.retry_interval = retry_interval
        self.max_pending = max_pending
        self.default_alphabet = default_alphabet
        self.sessions: list = []
        self._failures: dict[str, list[float]] = {}
        self._pending: list[_Delivery] = []
        self._receipted: set[str] = set()
        self._retry_call = None
        self._unsubscribe = queue.subscribe(self._on_event) if queue is not None else None

    def close(self):
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None

    # -- binds --------------------------------------------------------------------------

    def _account(self, system_id: str, mode: str) -> Account | None:
        if system_id == self.system_id:
            return Account(system_id, mode, None)
        base, suffix = system_id[:-2], system_id[-2:]
        if base == self.system_id and suffix.isdigit() and 1 <= int(suffix) <= self.lines():
            return Account(system_id, mode, int(suffix))
        return None

    def bind(self, system_id, password, mode, host):
        now = self.clock.seconds()
        recent = [t for t in self._failures.get(host, []) if t > now - self.bind_block]
        if len(recent) >= self.bind_failures:
            self.log.warn("auth blocked: service=smpp user={user} address={host}",
                          user=system_id, host=host)
            return defer.fail(SmppError(P.ESME_RBINDFAIL, "too many bind failures"))
        account = self._account(system_id, mode)
        ok = account is not None and bool(self.password) and hmac.compare_digest(
            password.encode("latin-1"), self.password.encode("latin-1"))
        if not ok:
            recent.append(now)
            self._failures[host] = recent
            if len(self._failures) > 10000:
                self._failures.pop(next(iter(self._failures)))
            self.log.warn("auth failure: service=smpp user={user} address={host}",
                          user=system_id, host=host)
            return defer.fail(SmppError(P.ESME_RINVPASWD, "bad system_id or password"))
        self._failures.pop(host, None)
        return defer.succeed(account)

    def session_bound(self, session):
        self.sessions.append(session)
        self._pump()

    def session_lost(self, session):
        if session in self.sessions:
            self.sessions.remove(session)

    # -- submits --------------------------------------------------------------------------

    def submit(self, account, message):
        sub = Submission(recipient=message.destination_addr, text=message.text, source="smpp",
                         source_ref=account.system_id, sender=message.source_addr,
                         line=account.line, report=message.registered_delivery & 0x03,
                         validity=message.validity, fragment=message.fragment,
                         delay=message.delay)
        d = self.queue.submit(sub)

        def refused(f):
            e = f.value
            if isinstance(e, QueueFull):
                raise SmppError(P.ESME_RTHROTTLED, str(e))
            if isinstance(e, RouteError):
                raise SmppError(P.ESME_RINVDSTADR, str(e))
            if isinstance(e, EncodeError):
                raise SmppError(P.ESME_RINVPARLEN, str(e))
            if isinstance(e, DuplicateFragment):
                raise SmppError(P.ESME_RSUBMITFAIL, str(e))
            if isinstance(e, NotReady):
                raise SmppError(P.ESME_RTHROTTLED, str(e))  # "try again shortly"
            return f
        return d.addCallbacks(lambda acc: acc.message_id, refused)

    @defer.inlineCallbacks
    def _info(self, message_id):
        mid, seq = parse_message_id(message_id)
        info = yield self.queue.info(mid)
        if info is None or info["source"] != "smpp":
            raise SmppError(P.ESME_RINVMSGID, f"message_id {message_id!r} unknown")
        return info, seq

    @defer.inlineCallbacks
    def query(self, account, message_id):
        info, seq = yield self._info(message_id)
        state = State(info["state"])
        final_at = info["updated_at"]
        if seq is not None and state not in (State.EXPIRED, State.CANCELLED):
            part = next((p for p in info["part_rows"] if p["seq"] == seq), None)
            if part is None:
                raise SmppError(P.ESME_RINVMSGID, f"message_id {message_id!r} unknown")
            if part["state"] in (State.DELIVERED.value, State.FAILED.value):
                state, final_at = State(part["state"]), part["done_at"]
            elif not state.final:
                state = State.QUEUED
        final = ""
        if state.final:
            final = format_smpp_date(final_at or self.clock.seconds()) + "00000+"
        return final, _QUERY_STATE[state], 0

    @defer.inlineCallbacks
    def cancel(self, account, message_id):
        info, seq = yield self._info(message_id)
        ok = yield self.queue.cancel(info["id"])
        if not ok:
            raise SmppError(P.ESME_RCANCELFAIL, "message already handed to a line")

    # -- receipts ---------------------------------------------------------------------------

    def _on_event(self, event):
        if event.source != "smpp":
            return
        if event.seq is None and not event.state.final:
            return
        d = self.queue.info(event.message)
        d.addCallback(self._receipts_for, event)
        d.addErrback(lambda f: self.log.failure("receipt for {message}", f, message=event.message))

    def _receipts_for(self, info, event):
        """One receipt per submitted id that asked for one, with the state combined
        over all parts (SPEC §7), once the whole message is final.  Clients that split
        texts themselves often ask on the first part only (Kannel does)."""
        if info is None or not info["report"] or event.seq is not None:
            return
        state = State(info["state"])
        if not state.final:
            return
        if info["client_split"]:
            for part in info["part_rows"]:
                mid = f"{info['id']}.{part['seq']}"
                if part["report"] and mid not in self._receipted:
                    self._receipt(info, mid, state, part["status"] or 0, info["updated_at"],
                                  part["report"])
        else:
            sid = str(info["id"])
            if sid not in self._receipted:
                failed = [p["status"] for p in info["part_rows"] if p["status"]]
                self._receipt(info, sid, state, failed[0] if failed else 0,
                              info["updated_at"], info["report"])

    def _receipt(self, info, message_id: str, state: State, err: int, done_at, wanted: int):
        if wanted == 2 and state is State.DELIVERED:
            return  # registered_delivery 2: receipts on failure only
        self._receipted.add(message_id)
        stat, mstate = _STAT[state]
        never_sent = state is State.FAILED and not any(p["mr"] is not None
                                                        for p in info["part_rows"])
        if never_sent:
            stat, mstate = "REJECTD", P.REJECTED
        if not err and info["error"]:
            digits = "".join(c for c in info["error"].split(":")[-1] if c.isdigit())
            err = int(digits[:3] or 0)
        text = info["text"][:20].encode("ascii", "replace").decode("ascii")
        body = (f"id:{message_id} sub:001 dlvrd:{'001' if state is State.DELIVERED else '000'}"
                f" submit date:{format_smpp_date(info['created_at'])}"
                f" done date:{format_smpp_date(done_at or self.clock.seconds())}"
                f" stat:{stat} err:{err % 1000:03d} text:{text}")
        params = {"source_addr": info["recipient"], "destination_addr": info["sender"],
                  "esm_class": P.ESM_DELIVERY_RECEIPT, "data_coding": 0,
                  "short_message": body.encode("ascii")}
        tlvs = {P.TAG_RECEIPTED_MESSAGE_ID: message_id, P.TAG_MESSAGE_STATE: mstate}
        owner = info["source_ref"]
        self._enqueue(_Delivery(lambda acc: acc.system_id == owner, lambda acc: (params, tlvs),
                                f"receipt {message_id}"))

    # -- received SMS (MO) -------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self):
        """Catch up on received SMS no client acknowledged before the last stop."""
        if self.store is None:
            return
        yield self.store.write(lambda conn: None)  # after the migrations
        last, rows = yield self.store.write(_mo_cursor_start, self.max_pending)
        self._mo_cursor = self._mo_seen = last
        for hid, line, sender, text in rows:
            self.deliver_mo(line, sender, text, history_id=hid)
        if rows:
            self.log.info("smpp: {n} received SMS not yet acknowledged by a client",
                          n=len(rows))

    def sms_received(self, msg) -> None:
        """IReceivedSmsObserver (goip_tw/sms/inbound.py): every stored received SMS."""
        self.deliver_mo(msg.line, msg.sender, msg.text, history_id=getattr(msg, "id", None))

    def _mo_done(self, delivery) -> None:
        """A received SMS is settled (acknowledged or refused for good): move the cursor."""
        hid = delivery.history_id
        if hid is None or self.store is None:
            return
        self._mo_open.discard(hid)
        cursor = min(self._mo_open) - 1 if self._mo_open else self._mo_seen
        if cursor > self._mo_cursor:
            self._mo_cursor = cursor
            self.store.write(_mo_cursor_advance, cursor).addErrback(
                lambda f: self.log.failure("smpp: cursor not saved", f))

    def deliver_mo(self, line: int | None, sender: str, text: str,
                   history_id: int | None = None) -> None:
        """Hand a received SMS to bound receivers; retried until a deliver_sm_resp."""
        if history_id is not None:
            if history_id in self._mo_open or history_id <= self._mo_cursor:
                return  # already on its way, or acknowledged before a restart
            self._mo_open.add(history_id)
            self._mo_seen = max(self._mo_seen, history_id)
        coding, data = encode_data_coding(text, self.default_alphabet)

        def build(acc):
            own = self.line_number(line) if (self.line_number and line) else None
            params = {"source_addr": sender, "destination_addr": own or acc.system_id,
                      "data_coding": coding, "source_addr_ton": 1 if sender.startswith("+") else 0}
            tlvs = {}
            if len(data) <= 254:
                params["short_message"] = data
            else:
                tlvs[P.TAG_MESSAGE_PAYLOAD] = data
            return params, tlvs

        self._enqueue(_Delivery(lambda acc: acc.line is None or acc.line == line, build,
                                f"sms from {sender} on line {line}", history_id=history_id))

    def _enqueue(self, delivery: _Delivery) -> None:
        if len(self._pending) >= self.max_pending:
            dropped = self._pending.pop(0)
            self.log.warn("smpp delivery queue full; dropped {what}", what=dropped.what)
            self._mo_done(dropped)
        self._pending.append(delivery)
        self._pump()

    def _pump(self) -> None:
        now = self.clock.seconds()
        for delivery in list(self._pending):
            if delivery.not_before > now:
                continue
            session = next((s for s in self.sessions if s.account is not None
                            and s.account.mode in ("receiver", "transceiver")
                            and s.can_deliver and delivery.want(s.account)), None)
            if session is None:
                continue
            self._pending.remove(delivery)
            params, tlvs = delivery.build(session.account)
            delivery.attempts += 1
            d = session.deliver(params, tlvs)
            d.addCallbacks(self._answered, self._unanswered, callbackArgs=(delivery,),
                           errbackArgs=(delivery,))
        self._arm_retry()

    def _answered(self, status, delivery):
        if status == P.ESME_ROK:
            self._mo_done(delivery)
            self._pump()
            return
        if status in _RETRYABLE:
            self._retry(delivery)
        else:
            self.log.warn("smpp client refused {what} with status {status:#x}",
                          what=delivery.what, status=status)
            self._mo_done(delivery)
        self._pump()

    def _unanswered(self, failure, delivery):
        self._retry(delivery)

    def _retry(self, delivery):
        delivery.not_before = self.clock.seconds() + self.retry_interval
        self._pending.append(delivery)
        self._arm_retry()

    def _arm_retry(self):
        waiting = [d.not_before for d in self._pending]
        if not waiting or (self._retry_call is not None and self._retry_call.active()):
            return
        delay = max(0.0, min(waiting) - self.clock.seconds())
        # Without a matching session nothing can change until a bind (session_bound).
        if delay == 0.0:
            return
        self._retry_call = self.clock.callLater(delay, self._retry_fire)

    def _retry_fire(self):
        self._retry_call = None
        self._pump()

    @property
    def pending(self) -> int:
        return len(self._pending)


class SmppService(service.Service):
    """Listens for ESMEs (TCP, and TLS when a certificate is configured).

    ``listening`` fires with the bound TCP port (``port = 0`` picks a free one).
    With generated demo credentials it announces
    ``smpp: system_id=ID password=PASSWORD port=PORT`` on the gateway console.
    """

    name = "smpp"
    log = Logger()

    def __init__(self, backend, reactor, cfg, announce=None, demo=False):
        self.backend = backend
        self.reactor = reactor
        self.cfg = cfg
        self.announce = announce
        self.demo = demo
        self.settings = SmppSettings(
            max_pdu=cfg.max_pdu, window=cfg.window, deliver_window=cfg.deliver_window,
            read_timeout=cfg.read_timeout, inactivity_timeout=cfg.inactivity_timeout,
            response_timeout=cfg.response_timeout, default_alphabet=cfg.default_alphabet)
        self.factory = SmscFactory(backend, reactor, self.settings)
        self.ports: list = []
        self.port_number: int | None = None
        self.listening = defer.Deferred()

    @defer.inlineCallbacks
    def startService(self):
        super().startService()
        ready = getattr(getattr(self.backend, "queue", None), "ready", None)
        if ready is not None and not ready.called:
            # Listen only once the queue can take submits: a client must never see
            # its first submit_sm refused because the gateway is still starting.
            waiter = defer.Deferred()
            ready.addBoth(lambda r: (waiter.callback(None), r)[1])
            yield waiter
            if not self.running:
                return
        self.backend.start().addErrback(
            lambda f: self.log.failure("smpp: received-SMS catch-up failed", f))
        cfg = self.cfg
        ep = endpoints.TCP4ServerEndpoint(self.reactor, cfg.port, interface=cfg.interface)
        try:
            port = yield ep.listen(self.factory)
        except Exception as e:
            self.log.error("smpp: cannot listen on {iface}:{port}: {error}",
                           iface=cfg.interface, port=cfg.port, error=e)
            return
        self.ports.append(port)
        self.port_number = port.getHost().port
        if cfg.tls_port and cfg.tls_cert:
            tls = endpoints.serverFromString(
                self.reactor, f"ssl:{cfg.tls_port}:interface={cfg.interface}:"
                              f"privateKey={cfg.tls_cert}")
            self.ports.append((yield tls.listen(self.factory)))
        self.log.info("smpp SMSC listening on {iface}:{port}", iface=cfg.interface,
                      port=self.port_number)
        if self.demo and self.announce is not None:
            self.announce(f"smpp: system_id={self.backend.system_id} "
                          f"password={self.backend.password} port={self.port_number}")
        self.listening.callback(self.port_number)

    def health_state(self) -> str:
        if not self.running:
            return "stopped"
        return f"listening on {self.port_number}, {len(self.backend.sessions)} bound"

    def reconfig(self, old, new, changed) -> None:
        """Accounts and bind limits apply to the next bind; ports at the next start."""
        if not any(k.startswith("smpp.") for k in changed):
            return
        cfg = new.smpp
        if cfg.password:
            self.backend.system_id, self.backend.password = cfg.system_id, cfg.password
        self.backend.bind_failures = cfg.bind_failures
        self.backend.bind_block = cfg.bind_block
        self.backend.retry_interval = cfg.retry_interval

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        self.backend.close()
        ports, self.ports = self.ports, []
        for port in ports:
            yield port.stopListening()
        # Unbind politely; a session that does not answer is closed by its timer.
        yield defer.DeferredList([s.unbind() for s in list(self.backend.sessions)
                                  if hasattr(s, "unbind")], consumeErrors=True)


def ensure_demo_credentials(data_dir: str) -> tuple[str, str]:
    """The simulated default's SMPP account: generated once, kept in the data dir.

    The lead prints ``smpp: system_id=ID password=PASSWORD port=PORT``.
    """
    path = os.path.join(data_dir, "smpp-demo-credentials")
    try:
        with open(path, encoding="ascii") as f:
            system_id, password = f.read().split()[:2]
            return system_id, password
    except (OSError, ValueError):
        pass
    alphabet = string.ascii_letters + string.digits
    password = "".join(secrets.choice(alphabet) for _ in range(8))
    system_id = "1"
    os.makedirs(data_dir, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"{system_id} {password}\n")
    return system_id, password


def _enabled(gateway) -> bool:
    mode = gateway.config.smpp.enabled
    if mode != "auto":
        return mode == "on"
    try:
        from goip_tw.simulator.service import should_run
    except ImportError:  # pragma: no cover
        return False
    return should_run(gateway.config)


def build_service(gateway):
    cfg = gateway.config.smpp
    if not _enabled(gateway):
        return None
    sms = gateway.subsystem("sms")
    queue = getattr(sms, "queue", None)
    if queue is None:
        return None
    password, system_id, demo = cfg.password, cfg.system_id, False
    if not password:
        system_id, password = ensure_demo_credentials(gateway.data_dir)
        demo = True
    lines = getattr(sms, "line_count", lambda: 32)
    line_number = getattr(sms, "line_number", None) if cfg.line_number else None
    backend = SmscBackend(queue, gateway.reactor, system_id, password, lines=lines,
                          line_number=line_number, bind_failures=cfg.bind_failures,
                          bind_block=cfg.bind_block, retry_interval=cfg.retry_interval,
                          default_alphabet=cfg.default_alphabet, store=gateway.store)
    if hasattr(sms, "add_received_observer"):
        sms.add_received_observer(backend)
    return SmppService(backend, gateway.reactor, cfg,
                       announce=getattr(gateway, "announce", None), demo=demo)
