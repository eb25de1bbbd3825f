"""IMobileLines on top of ``goip_tw.modem.api.Modem`` objects (one per line).

The modem API reports calls as events built from AT+CLCC (IncomingCall,
CallStateChanged, CallEnded, DtmfReceived); this adapter turns them into the
per-call listener calls the controller expects, and maps AT+CHLD (3GPP TS 27.007
§7.13 / TS 22.030 §6.5.5: 0 release held or reject waiting, 1 release active and
accept the other, 2 hold active and accept the other) onto the modem's methods.
"""

from __future__ import annotations

import collections

from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.calls.interfaces import IMobileCall, IMobileLines, LineStatus

log = Logger()


def _logged(d, what, line):
    def failed(f):
        log.warn("line {line}: {what} failed: {error}", line=line, what=what,
                 error=f.getErrorMessage())
    if d is not None and hasattr(d, "addErrback"):
        d.addErrback(failed)
    return d


@implementer(IMobileCall)
class ModemCall:
    def __init__(self, lines, line, info=None):
        self.lines = lines
        self.line = line
        self.info = info
        self.listener = None
        self.connected = False
        self.ended = False

    @property
    def modem(self):
        return self.lines.modem_of(self.line)

    @property
    def id(self):
        return self.info.id if self.info is not None and self.info.id else None

    def set_listener(self, listener):
        self.listener = listener

    def answer(self):
        if self.modem is not None:
            _logged(self.modem.answer(), "answer", self.line)

    def hangup(self):
        """Hang up and forget the call at once: the controller asked for it and already
        treats the call as over, so it must not hear ``mobile_ended`` again.  The
        modem's later CallEnded carries this call's ``serial``, matches nothing and
        is dropped, even when the module has given its index to the next call."""
        if self.ended or self.modem is None:
            return
        modem, call_id = self.modem, self.id
        self.lines._forget(self)
        self.lines._hanging_up(self.line, _logged(modem.hangup(call_id), "hangup", self.line))

    def send_dtmf(self, digits, duration_ms):
        if self.modem is not None:
            _logged(self.modem.send_dtmf(digits, duration_ms), "DTMF", self.line)

    def __repr__(self):
        return f"<ModemCall line={self.line} id={self.id}>"


@implementer(IMobileLines)
class ModemLines:
    """Lines backed by Modem objects; lines may be added and removed at run time
    (F-103 hot plug: a removed line ends its calls through the modem's CallEnded)."""

    def __init__(self, clock, status_extra=None):
        """``status_extra(line)`` may return a dict of LineStatus fields the SIM layer
        knows (enabled, slot, within_limits, talk_seconds)."""
        self.clock = clock
        self.modems: dict = {}
        self.controller = None
        self.status_extra = status_extra
        self._calls: dict[int, list[ModemCall]] = {}
        self._releasing: dict[int, int] = {}
        #: serials of calls hung up and forgotten, recent ones per line
        self._forgotten: dict[int, collections.deque] = {}
        self._observers = {}

    def add_line(self, line: int, source) -> None:
        """``source``: a ``goip_tw.modem.line.LineService`` (which replaces its Modem on
        every reopen and relays the modem's events) or a bare ``Modem``."""
        self.remove_line(line)
        self.modems[line] = source
        modem = source
        self._calls[line] = []

        def observer(event, line=line):
            self._event(line, event)
        self._observers[line] = observer
        modem.add_observer(observer)

    def remove_line(self, line: int) -> None:
        modem = self.modems.pop(line, None)
        observer = self._observers.pop(line, None)
        if modem is not None and observer is not None:
            modem.remove_observer(observer)
        for mcall in self._calls.pop(line, []):
            self._ended(mcall, None, "line removed")

    # -- IMobileLines ------------------------------------------------------------------

    def modem_of(self, line):
        source = self.modems.get(line)
        return getattr(source, "modem", source)

    def voice_port(self, line):
        """The line's IFramePort (LineService.voice), or None."""
        return getattr(self.modems.get(line), "voice", None)

    def line_numbers(self):
        return sorted(self.modems)

    def status(self, line):
        source = self.modems.get(line)
        modem = self.modem_of(line)
        if modem is None:
            return LineStatus(line, enabled=False, registered=False)
        if hasattr(source, "state") and hasattr(source, "sim_slot"):
            registered = source.state == "registered"
            slot = "ABCD"[source.sim_slot] if 0 <= source.sim_slot < 4 else None
        else:
            reg = getattr(modem, "last_registration", None)
            registered, slot = bool(reg is not None and reg.registered), None
        sim = getattr(modem, "sim", None)
        busy = bool(self._releasing.get(line)) or bool(getattr(modem, "calls", ()))
        fields = dict(registered=registered, slot=slot, iccid=getattr(sim, "iccid", None),
                      busy=busy)
        if self.status_extra is not None:
            fields.update(self.status_extra(line) or {})
        return LineStatus(line, **fields)

    def dial(self, line, number, listener):
        mcall = ModemCall(self, line)
        mcall.set_listener(listener)
        self._calls.setdefault(line, []).append(mcall)
        d = self.modem_of(line).dial(number)

        def dialled(info):
            if mcall.info is None and info is not None and info.serial:
                mcall.info = info

        def failed(f):
            text = f.getErrorMessage()
            log.info("line {line}: dialling {number} failed: {error}", line=line,
                     number=number, error=text)
            # Never re-enter the controller from inside dial(): report on the next turn.
            self.clock.callLater(0, self._ended, mcall, None, text)
        d.addCallbacks(dialled, failed)
        return mcall

    def chld(self, line, n):
        modem = self.modem_of(line)
        if modem is None:
            return None
        method = {"0": modem.release_held, "1": modem.release_active_and_accept,
                  "2": modem.hold_and_accept}[n]
        return _logged(method(), f"AT+CHLD={n}", line)

    # -- modem events ------------------------------------------------------------------

    def _find(self, line, info, adopt=True):
        """The call ``info`` is about, by ``serial`` (the module's index is reused as
        soon as a call is released, so two calls can share it for a moment).  An
        outgoing call we dialled but the module had not listed yet takes the first
        new serial it sees (``adopt``), never one of a call hung up and forgotten
        (its last state changes and its CallEnded still come)."""
        calls = self._calls.get(line, [])
        if info.serial:
            for mcall in calls:
                if mcall.info is not None and mcall.info.serial == info.serial:
                    return mcall
        if adopt and info.direction == "out" and info.serial not in self._forgotten.get(line, ()):
            for mcall in calls:
                if mcall.info is None and not mcall.ended:
                    mcall.info = info
                    return mcall
        return None

    def _event(self, line, event):
        from goip_tw.modem import model

        if isinstance(event, model.IncomingCall):
            mcall = ModemCall(self, line, event.call)
            self._calls.setdefault(line, []).append(mcall)
            if self.controller is None:
                mcall.hangup()
            elif event.waiting:
                self.controller.mobile_waiting(line, mcall, event.call.number or "")
            else:
                self.controller.mobile_incoming(line, mcall, event.call.number or "")
        elif isinstance(event, model.CallStateChanged):
            mcall = self._find(line, event.call)
            if mcall is None or mcall.listener is None:
                return
            mcall.info = event.call
            if event.call.state == "alerting":
                mcall.listener.mobile_alerting(mcall)
            elif (event.call.state == "active" and event.call.direction == "out"
                  and not mcall.connected):
                mcall.connected = True
                mcall.listener.mobile_connected(mcall)
        elif isinstance(event, model.CallEnded):
            mcall = self._find(line, event.call, adopt=False)
            if mcall is not None:
                self._ended(mcall, event.cause, event.text)
        elif isinstance(event, model.DtmfReceived):
            for mcall in self._calls.get(line, []):
                if mcall.listener is not None and not mcall.ended:
                    mcall.listener.mobile_dtmf(mcall, event.digit)
                    break

    def _hanging_up(self, line, d):
        """The line is not free again until the module confirmed the release."""
        self._releasing[line] = self._releasing.get(line, 0) + 1

        def done(result):
            self._releasing[line] -= 1
            return result
        if hasattr(d, "addBoth"):
            d.addBoth(done)
        else:
            done(None)

    def _forget(self, mcall):
        mcall.ended = True
        if mcall.info is not None and mcall.info.serial:
            self._forgotten.setdefault(mcall.line, collections.deque(maxlen=8)).append(
                mcall.info.serial)
        calls = self._calls.get(mcall.line, [])
        if mcall in calls:
            calls.remove(mcall)

    def _ended(self, mcall, cause, text):
        if mcall.ended:
            return
        mcall.ended = True
        calls = self._calls.get(mcall.line, [])
        if mcall in calls:
            calls.remove(mcall)
        if mcall.listener is not None:
            mcall.listener.mobile_ended(mcall, cause, text)
