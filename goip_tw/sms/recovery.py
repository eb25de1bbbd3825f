"""Resolving parts left ``sending`` by a crash or an unplugged module.

A claimed part records the TP-MR its module will use (the SIM's last used TP-MR
+ 1, EF_SMSS in 3GPP TS 31.102 §4.2.28).  When the line answers again, the SIM's
counter says whether the module sent it: if it reached the expected reference the
part is recorded as sent (dated by its claim, the closest we know to the real send)
and never repeated, otherwise it is queued again; a status report that settled the
part meanwhile overrules a counter that says "not sent".  A SIM that cannot tell gets
the queue's ``uncertain_policy``.
"""

from __future__ import annotations

import attrs
from twisted.internet import defer

from goip_tw.sms import repository as repo
from goip_tw.sms.model import State


def _mr_sent(last: int | None, expected: int | None) -> bool | None:
    """Did the SIM use ``expected``?  None = cannot tell."""
    if last is None or expected is None:
        return None
    return last != (expected - 1) % 256


class RecoveryMixin:
    """Part of SmsQueue (kept apart for size); uses its lines, store and pending."""

    def _recover(self, number: int) -> None:
        """Resolve parts left unconfirmed on ``number`` once it can answer again."""
        ls = self._lines.get(number)
        if (ls is None or ls.busy or ls.recovering or not self._uncertain.get(number)
                or not self._loaded or not ls.line.can_send()):
            return
        items = self._uncertain.pop(number)
        ls.recovering = True
        d = self._resolve(ls, items)
        d.addErrback(lambda f: self.log.failure("recovery on line {line}", f, line=number))

        def done(_):
            ls.recovering = False
            self._kick()
        d.addBoth(done)

    @defer.inlineCallbacks
    def _resolve(self, ls, items):
        """Decide each unconfirmed part by the SIM's TP-MR counter (see module doc)."""
        from goip_tw.sms.queue import SmsEvent, _Pending  # the queue imports this module

        line = ls.line
        for msg, seq, expected in items:
            last = None
            try:
                last = yield line.last_used_mr()
            except Exception:
                pass
            verdict = _mr_sent(last, expected)
            if verdict is None:
                verdict = self.settings.uncertain_policy != "resend"
            if not verdict and not (yield self.store.write(repo.part_unsent, msg.id, seq)):
                # A status report settled the part meanwhile: it left, whatever the
                # counter says (modules that keep TP-MR in their own memory).
                verdict = True
            now = self.clock.seconds()
            self.log.info("sms {message} part {seq} on line {line}: {verdict} after restart"
                          " (expected TP-MR {expected}, SIM last {last})", message=msg.id,
                          seq=seq, line=line.number, expected=expected, last=last,
                          verdict="sent" if verdict else "not sent")
            total = len(msg.parts)
            msg = attrs.evolve(msg, line=line.number)
            if verdict:
                mr = expected if expected is not None else -1
                nxt = seq + 1 if seq < total else None
                final = yield self.store.write(repo.part_sent, msg.id, seq, line.number, mr,
                                               now, nxt, (mr + 1) % 256 if nxt else None,
                                               recovered=True)
                if nxt is None:
                    self._publish(SmsEvent(msg.id, State.SENT, line=line.number,
                                           source=msg.source, source_ref=msg.source_ref))
                    if final is not None:
                        # Every part's report was drained from the SIM before this
                        # recovery (reports come per part, TS 23.040 9.2.3.5): the
                        # combined state is known now and must be reported once.
                        self._publish(SmsEvent(msg.id, final, line=line.number,
                                               source=msg.source, source_ref=msg.source_ref))
                    continue
                yield self._send(ls, _Pending(attrs.evolve(msg, sent_parts=seq), (line.number,)),
                                 first_seq=nxt, claimed=True, first_expected=(mr + 1) % 256)
            else:
                yield self.store.write(repo.requeue, msg.id, msg.tried_lines, "", now, seq > 1)
                lines = (line.number,) if seq > 1 else self._lines_for(msg)
                self._enqueue(_Pending(attrs.evolve(msg, sent_parts=seq - 1), lines))

