"""The simulated SMS centre.

Modules submit SMS-SUBMIT PDUs (or text mode messages); the centre reassembles
concatenated parts, records the message, and delivers it as SMS-DELIVER PDUs to
the SIM with that number (or to a remote phone).  Messages for a SIM that is
not reachable, or whose store is full, wait and are retried when it registers
or frees space — as a real SMSC retries.  Status reports (TS 23.040 9.2.2.3)
go back to the sender when TP-SRR asked for one.  PDUs are built and parsed
with :mod:`goip_tw.modem.pdu`; this module only routes.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import attrs
from twisted.logger import Logger

from goip_tw.modem import pdu

from .timers import Timers

log = Logger()

#: TS 23.040 9.2.3.15 TP-Status values.
DELIVERED = 0x00
UNDELIVERABLE = 0x41  # permanent error: incompatible destination
EPOCH_2026 = 1767225600.0


@attrs.define
class PendingSms:
    sender: str
    recipient: str
    text: str
    encoding: str | None
    report_to: tuple = ()   # ((module, TP-MR), ...): one per part that asked for a report
    parts: list = attrs.field(factory=list)
    entry: dict = attrs.field(factory=dict)


class SmsCenter:
    def __init__(self, network, *, concat_timeout: float = 120.0):
        self.network = network
        self.timers = Timers(network.clock)
        self.reassembler = pdu.Reassembler(network.clock, concat_timeout, self._incomplete)
        self.pending: list[PendingSms] = []
        self.log: list[dict] = []
        self._ref = 0
        # A real SMSC reports every part of a long message that asked for a report
        # (3GPP TS 23.040 9.2.3.5); collect them until the message is whole.
        self._part_reports: dict[tuple, list] = {}
        # Reports a module could not take (store full, unplugged): retried like
        # messages when it frees space or comes back (TS 23.040 §3.2.5 memory available).
        self.pending_reports: list[tuple] = []

    def stop(self) -> None:
        self.timers.cancel_all()
        self.reassembler.on_timeout = None  # drop incomplete parts silently at stop
        self.reassembler.flush()
        self.reassembler.on_timeout = self._incomplete
        self._part_reports.clear()
        self.pending_reports.clear()

    def now(self) -> datetime:
        """Network time: the clock, or a fixed 2026 epoch under a test Clock."""
        seconds = self.network.clock.seconds()
        if seconds < 1e9:
            seconds += EPOCH_2026
        return datetime.fromtimestamp(int(seconds), timezone.utc)

    # -- from modules -------------------------------------------------------

    def submit(self, module, message) -> int:
        """A SUBMIT from ``module``; returns the TP-MR the module reports."""
        module.message_ref = (module.message_ref + 1) % 256
        mr = module.message_ref
        sender = module.sim.msisdn
        key = (sender, message.recipient, message.concat.ref, message.concat.total) \
            if message.concat else None
        reports = self._part_reports.setdefault(key, []) if key else []
        if message.status_report_request:
            reports.append((module, mr))
        self.network.record("sms_submit", module=module.number, to=message.recipient,
                            part=(message.concat.seq if message.concat else 1),
                            parts=(message.concat.total if message.concat else 1))
        keyed = attrs.evolve(message, recipient=f"{sender}>{message.recipient}")
        whole = self.reassembler.add(keyed)
        if whole is not None:
            self._part_reports.pop(key, None)
            self.send(sender, message.recipient, whole.text, encoding=whole.encoding,
                      report_to=tuple(reports))
        return mr

    def submit_text(self, module, recipient: str, text: str, *, status_report=False) -> int:
        module.message_ref = (module.message_ref + 1) % 256
        mr = module.message_ref
        self.send(module.sim.msisdn, recipient, text,
                  report_to=((module, mr),) if status_report else ())
        return mr

    def _incomplete(self, message, missing) -> None:
        sender, _, recipient = message.recipient.partition(">")
        key = (sender, recipient, message.concat.ref, message.concat.total) \
            if message.concat else None
        reports = tuple(self._part_reports.pop(key, ()))
        log.warn("simulator SMS from {sender} to {recipient} missing parts {missing}",
                 sender=sender, recipient=recipient, missing=missing)
        self.send(sender, recipient, message.text, encoding=message.encoding,
                  report_to=reports)

    # -- routing --------------------------------------------------------------

    def send(self, sender: str, recipient: str, text: str, *, encoding=None,
             report_to=()) -> dict:
        """Route one complete message from ``sender`` to ``recipient``."""
        entry = {"from": sender, "to": recipient, "text": text,
                 "time": self.network.clock.seconds(), "status": "pending"}
        self.log.append(entry)
        if len(self.log) > 5000:
            del self.log[:500]
        self.network.record("sms", **{"from": sender, "to": recipient, "text": text})
        net = self.network
        net.charge(sender, net.sms_price * pdu.count_parts(text, encoding))
        if net.sim_module(recipient) is None and net.find_sim(recipient) is None:
            phone = net.phone(recipient)
            if phone is None:
                entry["status"] = "undeliverable"
                self._report(report_to, recipient, UNDELIVERABLE)
                return entry
            entry["status"] = "delivered"
            phone.sms_received(sender, text)
            self._report(report_to, recipient, DELIVERED)
            return entry
        item = PendingSms(sender, recipient, text, encoding, report_to, entry=entry)
        self.pending.append(item)
        self._try(item)
        return entry

    def _try(self, item: PendingSms) -> None:
        module = self.network.sim_module(item.recipient)
        if module is None or not self.network.reachable(module):
            return
        if not item.parts:
            self._ref = (self._ref + 1) % 256
            try:
                item.parts = pdu.encode_deliver(
                    item.sender, item.text, self.now(), smsc=self.network.smsc_number,
                    encoding=item.encoding, concat_ref=self._ref,
                    status_report_indication=bool(item.report_to))
            except pdu.PduError as exc:
                log.warn("simulator cannot encode SMS to {to}: {error}",
                         to=item.recipient, error=exc)
                self._finish(item, "undeliverable", UNDELIVERABLE)
                return
        from .at_sms import sms_incoming

        while item.parts:
            hex_pdu, length = item.parts[0]
            if not sms_incoming(module, hex_pdu, length):
                return  # store full: retried when space is freed
            item.parts.pop(0)
        self._finish(item, "delivered", DELIVERED)

    def _finish(self, item, status_text, status) -> None:
        if item in self.pending:
            self.pending.remove(item)
        item.entry["status"] = status_text
        self._report(item.report_to, item.recipient, status)

    def retry_for(self, module) -> None:
        for item in list(self.pending):
            target = self.network.sim_module(item.recipient)
            if target is module:
                self._try(item)
        waiting = [r for r in self.pending_reports if r[0] is module]
        self.pending_reports = [r for r in self.pending_reports if r[0] is not module]
        for report in waiting:
            self._deliver_report(*report)

    def _deliver_report(self, module, hex_pdu: str, length: int) -> None:
        from .at_sms import status_report_incoming

        if not status_report_incoming(module, hex_pdu, length):
            if len(self.pending_reports) < 10000:
                self.pending_reports.append((module, hex_pdu, length))

    def _report(self, report_to, recipient: str, status: int) -> None:
        now = self.now()
        for module, mr in report_to or ():
            hex_pdu, length = pdu.encode_status_report(mr, recipient, now, now, status,
                                                       smsc=self.network.smsc_number)
            self.timers.later(0.5, self._deliver_report, module, hex_pdu, length)
            self.network.record("sms_report", module=module.number, mr=mr, status=status)

    def describe(self) -> dict:
        return {"log": self.log[-100:], "pending": len(self.pending), "time": time.time()}
