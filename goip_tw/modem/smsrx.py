"""SMS sending and exactly-once reception for :class:`goip_tw.modem.api.Modem` (mixin).

Reception uses the store-and-notify mode of TS 27.005 §3.4.1 (AT+CNMI=2,1,0,2,0):
the module stores each SMS / status report and says ``+CMTI`` / ``+CDSI``.  We read
it (AT+CMGR / AT+CMGL=4 in PDU mode), hand it to ``sms_handler`` /
``report_handler`` and delete the module copy (AT+CMGD) only after the Deferred the
handler returned has fired.  If the read (AT+CMGR) or the handler fails, or the delete
does, the copy stays and that location is read again a few seconds later, the wait
doubling per failure up to ``retry_max`` (a message that always fails neither spins
nor holds up the others; the periodic drain offers it too).  Already-delivered
messages (same IMSI + sender + timestamp + concatenation reference + part) found
again are deleted without a second delivery.
A long message's copies are deleted highest part first: part 1's time stamp names the
message (its duplicate key), so parts left on the module by a crash between the
deletes still carry it, and are dropped as the stored message's duplicate once their
reassembly times out (each part of a long SMS gets its own TP-SCTS on a real network).
Directly routed ``+CMT`` / ``+CDS`` (a module that ignores our CNMI) are acknowledged
with AT+CNMA after the handler fired.
"""

from __future__ import annotations

import collections
import hashlib

import attrs

from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.modem import at, model, pdu
from goip_tw.modem.drivers.base import split_fields

log = Logger()


class SmsSendError(Exception):
    """A multi-part send stopped at part ``failed_part`` (1-based); ``references``
    holds the TP-MRs of the parts the network accepted before it.  ``cause`` is the
    AtError.  With a PortClosed cause the failed part's fate is unknown."""

    def __init__(self, references, failed_part, total, cause):
        super().__init__(f"SMS part {failed_part}/{total} failed: {cause}")
        self.references = list(references)
        self.failed_part = failed_part
        self.total = total
        self.cause = cause


def _part_key(imsi, msg) -> str:
    c = msg.concat
    ref = f"{c.ref_bits}:{c.ref}:{c.total}:{c.seq}" if c else "-"
    body = hashlib.sha1((msg.text or "").encode() + (msg.data or b"")).hexdigest()[:12]
    return f"{imsi or '-'}|{msg.sender}|{msg.timestamp.isoformat()}|{ref}|{body if not c else ''}"


def _message_key(imsi, msg) -> str:
    c = msg.concat
    ref = f"{c.ref_bits}:{c.ref}:{c.total}" if c else "-"
    body = hashlib.sha1((msg.text or "").encode() + (msg.data or b"")).hexdigest()[:12]
    return f"{imsi or '-'}|{msg.sender}|{msg.timestamp.isoformat()}|{ref}|{body if not c else ''}"


class SmsMixin:
    dedupe_capacity = 4096
    #: seconds before a location whose read, hand-over or delete failed is read again;
    #: doubled per failure of that location, at most ``retry_max``
    retry_delay = 2.0
    retry_max = 300.0

    def __init__(self, reassembly_timeout: float):
        self.sms_handler = None
        self.report_handler = None
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._busy: set = set()
        self._reasm = pdu.Reassembler(self.clock, reassembly_timeout, on_timeout=self._partial)
        self._part_locs: dict[tuple, list[tuple[int, tuple]]] = {}  # (seq, location)
        self._part_keys: dict[tuple, list] = {}
        self._failures: dict[tuple, int] = {}
        self._retries: dict[tuple, object] = {}
        self.sms_full = False

    # ------------------------------------------------------------------ sending
    @defer.inlineCallbacks
    def send_sms(self, recipient: str, text, *, status_report: bool = False,
                 validity_minutes: int | None = None, smsc: str | None = None,
                 encoding: str | None = None, concat_ref: int | None = None):
        """Submit ``text`` (split as needed) and return the TP-MR of each part."""
        at.check_number(recipient, "recipient")
        parts = pdu.encode_submit(recipient, text, smsc=smsc, status_report=status_report,
                                  validity_minutes=validity_minutes, encoding=encoding,
                                  concat_ref=concat_ref)
        refs = []
        for i, (hexpdu, length) in enumerate(parts, 1):
            try:
                resp = yield self.cmd(f"AT+CMGS={length}", kind="sms", payload=hexpdu)
            except at.AtError as exc:
                raise SmsSendError(refs, i, len(parts), exc) from None
            value = resp.value("+CMGS") or ""
            mr = split_fields(value)[0] if value else ""
            refs.append(int(mr) if mr.isdigit() else -1)
        return refs

    # ------------------------------------------------------------------ reception
    def handle_sms_urc(self, urc) -> bool:
        if urc.name in ("+CMTI", "+CDSI"):
            f = split_fields(urc.value)
            if len(f) >= 2 and f[1].isdigit():
                loc = (f[0] or "SM", int(f[1]))
                if loc not in self._busy:
                    self._forget_failures([loc])  # a new message: the index was free
                self._fetch(*loc).addErrback(self._log_failure, "fetch")
            return True
        if urc.name in ("+CMT", "+CDS"):
            if urc.pdu:
                self._process(urc.pdu, [("direct", urc.name)]).addErrback(self._log_failure, "direct")
            return True
        if urc.name == "+CIEV" and "SMSFULL" in urc.value.upper().replace('"', ""):
            self.emit(model.SmsStoreFull("SM"))
            self.drain_sms().addErrback(self._log_failure, "drain")
            return True
        return False

    def _log_failure(self, failure, what):
        if not failure.check(at.PortClosed):
            log.failure("{name}: SMS {what} failed", failure, name=self.name, what=what)

    @defer.inlineCallbacks
    def _fetch(self, storage: str, index: int):
        loc = (storage, index)
        if loc in self._busy:
            return
        self._busy.add(loc)
        try:
            resp = yield self._in_storage(storage, f"AT+CMGR={index}")
        except at.CmsError as exc:
            self._busy.discard(loc)
            if exc.code == 321:  # invalid memory index: nothing stored there (any more)
                self._forget_failures([loc])
                return
            self._retry_later([loc])
            raise
        except at.AtError:
            self._busy.discard(loc)
            self._retry_later([loc])
            raise
        except Exception:
            self._busy.discard(loc)
            raise
        pdu_line = next((ln for ln in resp.lines if not ln.startswith("+CMGR")), None)
        if pdu_line is None:
            self._busy.discard(loc)
            self._forget_failures([loc])
            return
        yield self._process(pdu_line, [loc])

    def _retry_later(self, locs):
        """Read ``locs`` again soon instead of at the next periodic drain (which only
        sees "SM"); one timer per location, its wait doubling with each failure."""
        if not self.engine.connected:
            return  # sms_lost() ran: a new port starts with a drain
        for loc in locs:
            if loc[0] == "direct":
                continue  # not stored: nothing to read again
            n = self._failures[loc] = self._failures.get(loc, 0) + 1
            timer = self._retries.get(loc)
            if timer is not None and timer.active():
                continue
            delay = min(self.retry_delay * 2 ** min(n - 1, 20), self.retry_max)
            log.info("{name}: SMS at {loc} read again in {delay}s (failure {n})",
                     name=self.name, loc=loc, delay=delay, n=n)
            self._retries[loc] = self.clock.callLater(delay, self._retry, loc)

    def _retry(self, loc):
        self._retries.pop(loc, None)
        self._fetch(*loc).addErrback(self._log_failure, "retry")

    def _forget_failures(self, locs):
        for loc in locs:
            self._failures.pop(loc, None)
            timer = self._retries.pop(loc, None)
            if timer is not None and timer.active():
                timer.cancel()

    def _in_storage(self, storage: str, command: str):
        """Run ``command`` against memory ``storage``.  For anything but "SM" the three
        commands (select, command, select "SM" again) are queued together, so no
        other command of ours runs in between (TS 27.005 §3.2.2 AT+CPMS)."""
        if storage == "SM":
            return self.cmd(command, kind="sim")
        if storage not in ("ME", "MT", "SR", "BM"):
            return defer.fail(at.BadArgument(f"storage {storage!r} unknown"))
        select = self.cmd(f'AT+CPMS="{storage}"', kind="sim")
        main = self.cmd(command, kind="sim")
        back = self.cmd('AT+CPMS="SM","SM","SM"', kind="sim")
        select.addErrback(lambda f: log.warn("{name}: AT+CPMS={s} failed", name=self.name, s=storage))
        back.addErrback(lambda f: None)
        return main

    @defer.inlineCallbacks
    def drain_sms(self):
        """Read every stored message (AT+CMGL=4) and deliver the new ones; check the
        store and report SmsStoreFull when it was full (TS 27.005 §3.2.2 AT+CPMS)."""
        resp = yield self._try("AT+CPMS?")
        if resp is not None and resp.value("+CPMS"):
            f = split_fields(resp.value("+CPMS"))
            if len(f) >= 3 and f[1].isdigit() and f[2].isdigit():
                full = int(f[2]) > 0 and int(f[1]) >= int(f[2])
                if full and not self.sms_full:
                    self.emit(model.SmsStoreFull(f[0]))
                self.sms_full = full
        resp = yield self.cmd("AT+CMGL=4", kind="sim")
        items, index = [], None
        for line in resp.lines:
            if line.startswith("+CMGL:"):
                f = split_fields(line[6:])
                index = int(f[0]) if f and f[0].isdigit() else None
            elif index is not None:
                items.append((index, line))
                index = None
        work = []
        for index, hexpdu in items:
            loc = ("SM", index)
            if loc in self._busy:
                continue
            self._busy.add(loc)
            work.append(self._process(hexpdu, [loc]).addErrback(self._log_failure, "drained"))
        yield defer.DeferredList(work)
        return len(items)

    @defer.inlineCallbacks
    def _process(self, hexpdu: str, locs: list):
        try:
            msg = pdu.decode(hexpdu)
        except pdu.PduError as exc:
            log.error("{name}: undecodable SMS at {locs}: {err}; raw {raw}", name=self.name,
                      locs=locs, err=str(exc), raw=hexpdu[:400])
            yield self._delete(locs)
            return
        imsi = self.sim.imsi if self.sim else None
        if isinstance(msg, pdu.StatusReport):
            key = f"{imsi or '-'}|SR|{msg.recipient}|{msg.message_ref}|{msg.scts.isoformat()}"
            event = model.DeliveryReport(msg.message_ref, msg.recipient, msg.status,
                                         msg.delivered, msg.final, msg.scts,
                                         msg.discharge_time, imsi, key)
            yield self._hand_over(self.report_handler, event, key, locs)
            return
        if not isinstance(msg, pdu.Deliver):
            yield self._delete(locs)
            return
        part_key = _part_key(imsi, msg)
        if part_key in self._seen:
            yield self._delete(locs)
            return
        c = msg.concat
        if c is None or c.total <= 1:
            yield self._deliver(msg, locs, imsi, 1, (), [part_key])
            return
        group = (msg.sender, c.ref_bits, c.ref, c.total)
        self._part_locs.setdefault(group, []).extend((c.seq, loc) for loc in locs)
        keys = self._part_keys.setdefault(group, [])
        if part_key not in keys:
            keys.append(part_key)
        whole = self._reasm.add(msg)
        if whole is None:
            return  # locations stay busy until the whole message is handed over
        group_locs = self._pop_part_locs(group)
        group_keys = self._part_keys.pop(group, [])
        yield self._deliver(whole, group_locs, imsi, c.total, (), group_keys, c)

    def _partial(self, whole, missing):
        """Reassembly timed out: hand over what we have rather than lose it."""
        c = whole.concat
        group = (whole.sender, c.ref_bits, c.ref, c.total)
        locs = self._pop_part_locs(group)
        keys = self._part_keys.pop(group, [])
        imsi = self.sim.imsi if self.sim else None
        whole = attrs.evolve(whole, concat=None)
        self._deliver(whole, locs, imsi, c.total, missing, keys, probe_concat=c).addErrback(
            self._log_failure, "partial")

    def _pop_part_locs(self, group) -> list:
        """The group's locations in delete order: highest part first (module docstring)."""
        located = self._part_locs.pop(group, [])
        return [loc for _, loc in sorted(located, key=lambda sl: -sl[0])]

    def _deliver(self, whole, locs, imsi, parts, missing, part_keys, probe_concat=None):
        probe = attrs.evolve(whole, concat=probe_concat) if probe_concat else whole
        key = _message_key(imsi, probe)
        event = model.IncomingSms(
            sender=whole.sender, text=whole.text, timestamp=whole.timestamp, smsc=whole.smsc,
            encoding=whole.encoding, data=whole.data, parts=parts, missing=tuple(missing),
            imsi=imsi, dedupe_key=key, message_class=whole.message_class)
        return self._hand_over(self.sms_handler, event, key, locs, part_keys)

    @defer.inlineCallbacks
    def _hand_over(self, handler, event, key, locs, part_keys=()):
        if key in self._seen:
            yield self._delete(locs)
            return
        if handler is None:
            log.warn("{name}: no handler for {kind}; leaving it on the module", name=self.name,
                     kind=type(event).__name__)
            self._release(locs)
            return
        try:
            yield defer.maybeDeferred(handler, event)
        except Exception:
            log.failure("{name}: handler refused {kind}; it stays on the module",
                        name=self.name, kind=type(event).__name__)
            self._release(locs)
            self._retry_later(locs)
            return
        for k in (key, *part_keys):
            self._seen[k] = None
        while len(self._seen) > self.dedupe_capacity:
            self._seen.popitem(last=False)
        yield self._delete(locs)

    def _release(self, locs):
        for loc in locs:
            self._busy.discard(loc)

    @defer.inlineCallbacks
    def _delete(self, locs):
        """Delete the module copies (AT+CNMA for a direct one).  A copy whose delete
        failed is read again later; being in ``_seen`` it is then only deleted."""
        left = [loc for loc in locs if loc[0] != "direct"]
        try:
            for storage, index in locs:
                if storage == "direct":
                    yield self._try("AT+CNMA")
                    continue
                try:
                    yield self._in_storage(storage, f"AT+CMGD={index}")
                except at.CmsError as exc:
                    log.warn("{name}: AT+CMGD={index} failed: {err}", name=self.name,
                             index=index, err=exc.result)
                    continue
                left.remove((storage, index))
        finally:
            self._release(locs)
            self._forget_failures([loc for loc in locs if loc not in left])
            self._retry_later(left)

    def sms_lost(self):
        self._busy.clear()
        self._part_locs.clear()
        self._part_keys.clear()
        self._forget_failures(list(self._failures) + list(self._retries))

    def stop_sms(self):
        self._forget_failures(list(self._failures) + list(self._retries))
        self._reasm.on_timeout = None
        self._reasm.flush()
        self._reasm.on_timeout = self._partial
