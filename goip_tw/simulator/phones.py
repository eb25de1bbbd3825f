"""Remote phones: scripted subscribers outside the gateway.

A remote phone answers after N seconds or never, is busy, rejects, is
unreachable, hangs up after N seconds, plays a tone or a WAV or echoes what it
hears, sends DTMF digits, calls a SIM, and sends or echoes SMS.  Everything it
hears and receives is kept (bounded) so tests can assert on it.
"""

from __future__ import annotations

import attrs

from .audio import SILENCE, ToneSource, WavSource
from .timers import Timers

HEARD_LIMIT = 10 * 16000  # ten seconds of audio
AUDIO_KINDS = ("silence", "echo", "tone", "wav")


def _check_audio(inst, attribute, value):
    kind = value.split(":", 1)[0]
    if kind not in AUDIO_KINDS:
        raise ValueError(f"audio must be one of {AUDIO_KINDS} (tone:HZ, wav:PATH); got {value!r}")
    if kind == "tone":
        float(value.split(":", 1)[1] if ":" in value else 440)
    if kind == "wav" and ":" not in value:
        raise ValueError("audio wav needs a path: wav:/path/file.wav")


def _optional_seconds(inst, attribute, value):
    if value is not None and not 0 <= value <= 86400:
        raise ValueError(f"{attribute.name} must be 0..86400 seconds or None")


@attrs.frozen
class PhoneBehaviour:
    answer_after: float | None = attrs.field(default=2.0, validator=_optional_seconds)
    busy: bool = False
    reject: bool = False
    unreachable: bool = False
    hangup_after: float | None = attrs.field(default=None, validator=_optional_seconds)
    audio: str = attrs.field(default="silence", validator=_check_audio)
    dtmf: str = ""
    dtmf_delay: float = 1.0
    sms_echo: bool = False
    sms_reply: str | None = None


class RemotePhone:
    def __init__(self, network, number: str, behaviour: PhoneBehaviour):
        self.network = network
        self.number = number
        self.behaviour = behaviour
        self.timers = Timers(network.clock)
        self.call_timers = Timers(network.clock)
        self.received_sms: list[dict] = []
        self.received_dtmf: list[str] = []
        self.heard = bytearray()
        self.frames_heard = 0
        self.call = None
        self._echo = []
        self._source = self._make_source()

    def _make_source(self):
        kind, _, arg = self.behaviour.audio.partition(":")
        if kind == "tone":
            return ToneSource(float(arg or 440))
        if kind == "wav":
            return WavSource(arg)
        return None

    def set_behaviour(self, behaviour: PhoneBehaviour) -> None:
        self.behaviour = behaviour
        self._source = self._make_source()

    # -- network callbacks --------------------------------------------------

    def call_incoming(self, call) -> None:
        from .network import ABSENT, BUSY, REJECTED

        b = self.behaviour
        net = self.network
        if b.unreachable:
            self.call_timers.later(0, net.end_call, call, ABSENT, self)
        elif b.busy or (self.call is not None and self.call.state != "ended"):
            self.call_timers.later(0.5, net.end_call, call, BUSY, self)
        elif b.reject:
            self.call_timers.later(1.0, net.end_call, call, REJECTED, self)
        else:
            self.call = call
            if b.answer_after is not None:
                self.call_timers.later(b.answer_after, net.answer, call)

    def call_alerting(self, call) -> None:
        pass

    def call_answered(self, call) -> None:
        self._connected(call)

    def call_connected(self, call) -> None:
        self._connected(call)

    def _connected(self, call) -> None:
        self.call = call
        self._echo.clear()
        b = self.behaviour
        if b.hangup_after is not None:
            self.call_timers.later(b.hangup_after, self.hangup)
        for i, digit in enumerate(b.dtmf):
            self.call_timers.later(b.dtmf_delay + 0.3 * i, self._dtmf, call, digit)

    def _dtmf(self, call, digit) -> None:
        if call.state == "active":
            self.network.send_dtmf(call, self, digit)

    def call_ended(self, call, cause) -> None:
        if self.call is call:
            self.call = None
            self.call_timers.cancel_all()

    def call_dtmf(self, call, digit: str) -> None:
        self.received_dtmf.append(digit)

    def pull_audio(self, call) -> bytes:
        if self.behaviour.audio == "echo":
            return self._echo.pop(0) if self._echo else SILENCE
        if self._source is not None:
            return self._source.frame()
        return SILENCE

    def push_audio(self, call, frame: bytes) -> None:
        self.frames_heard += 1
        self.heard += frame
        if len(self.heard) > HEARD_LIMIT:
            del self.heard[:len(self.heard) - HEARD_LIMIT]
        if self.behaviour.audio == "echo":
            self._echo.append(frame)
            if len(self._echo) > 50:
                del self._echo[0]

    # -- actions ----------------------------------------------------------

    def dial(self, number: str):
        """Call a number (usually a SIM); returns the network call."""
        call = self.network.place_call(self, self.number, number)
        self.call = call
        return call

    def hangup(self) -> None:
        from .network import NORMAL

        if self.call is not None and self.call.state != "ended":
            call, self.call = self.call, None
            self.network.end_call(call, NORMAL, by=self)
        self.call_timers.cancel_all()

    def send_dtmf(self, digits: str) -> None:
        if self.call is None or self.call.state != "active":
            raise ValueError("no active call")
        for i, digit in enumerate(digits):
            self.call_timers.later(0.2 * i, self._dtmf, self.call, digit)

    def send_sms(self, to: str, text: str, *, encoding: str | None = None,
                 status_report: bool = False):
        return self.network.sms.send(self.number, to, text, encoding=encoding)

    def sms_received(self, sender: str, text: str) -> None:
        self.received_sms.append({"from": sender, "text": text,
                                  "time": self.network.clock.seconds()})
        if len(self.received_sms) > 1000:
            del self.received_sms[:100]
        b = self.behaviour
        reply = text if b.sms_echo else b.sms_reply
        if reply:
            self.timers.later(1.0, self.network.sms.send, self.number, sender, reply)

    def stop(self) -> None:
        self.timers.cancel_all()
        self.call_timers.cancel_all()

    def describe(self) -> dict:
        return {
            "number": self.number,
            "behaviour": attrs.asdict(self.behaviour),
            "in_call": self.call is not None,
            "received_sms": self.received_sms[-20:],
            "received_dtmf": "".join(self.received_dtmf),
            "frames_heard": self.frames_heard,
        }
