"""Per-call media: one RTP leg, one voice port, joined on the shared 20 ms tick.

:class:`LegMedia` is the RTP side of one SIP leg: it encodes (with packet time,
VAD/silence suppression and RFC 4733 DTMF taking precedence over voice) and
decodes through the jitter buffer with concealment.  :class:`LineMedia` is the
module's voice port (anything with ``read_frame``/``write_frame``, see
:mod:`goip_tw.media.interfaces`) with per-line gain (F-1602).

A :class:`Session` is what the ticker drives: once per 20 ms it pulls one
frame from the line, sends it (or a tone) to the leg, pops one frame from the
leg and writes it (or a tone) to the line, feeding DTMF detectors and the
one-way-audio meter on the way.  Pacing comes from the ticker, not from packet
arrival, so a bursty network or a bursty module port never changes the rate
at which either side gets audio.

The hot state and the per-tick work of all three live in C base classes
(:mod:`goip_tw.media._fastpath`); these classes keep construction,
negotiation and the uncommon cases (DTMF events, VAD and comfort noise,
packet times other than 20 ms).
"""

from __future__ import annotations

import array
import math
import random
from typing import Callable

from twisted.logger import Logger

from goip_tw.media import _dsp
from goip_tw.media._fastpath import LegCore, LineCore, SessionCore
from goip_tw.media.codecs import CN_PAYLOAD_TYPE, Codec
from goip_tw.media.dtmf import DtmfEvent, Rfc4733Receiver, Rfc4733Sender
from goip_tw.media.interfaces import FRAME_BYTES, FRAME_SAMPLES
from goip_tw.media.jitterbuffer import AUDIO, LOST, JitterBuffer
from goip_tw.media.rtp import RtpPacket, RtpStream
from goip_tw.media.vad import Gain, OneWayAudio, Vad

log = Logger()

SILENCE = bytes(FRAME_BYTES)
SID_INTERVAL = 25  # packets of silence between RFC 3389 SID updates (0.5 s)


def noise_level(pcm: bytes) -> int:
    """RFC 3389 noise level byte: -dBov, 0..127 (0 dBov = a full-scale square wave)."""
    ms = _dsp.energy(pcm)[0]
    if ms <= 0:
        return 127
    return max(0, min(127, int(round(-10 * math.log10(ms / (32767.0 ** 2))))))


def comfort_noise(cn: bytes, samples: int, _rnd=random.Random(0)) -> bytes:
    """White noise at the level of an RFC 3389 payload (spectral shape ignored)."""
    level = cn[0] & 0x7F if cn else 127
    if level >= 90:
        return bytes(2 * samples)
    sigma = 32767.0 * 10 ** (-level / 20)
    return array.array("h", [max(-32768, min(32767, int(_rnd.gauss(0, sigma))))
                             for _ in range(samples)]).tobytes()


class LegMedia(LegCore):
    """The RTP side of one call leg (created before SDP negotiation ends)."""

    def __init__(self, clock, stream: RtpStream, *, jitter_min_ms: int = 20,
                 jitter_max_ms: int = 200, vad: bool = False):
        self.clock = clock
        self.stream = stream
        self.codec: Codec | None = None
        self.encoder = None
        self.decoder = None
        self.dtmf_pt: int | None = None
        self.ptime = 20
        self.remote_ptime = 20
        self.jitter_min_ms = jitter_min_ms
        self.jitter_max_ms = jitter_max_ms
        self.jb = JitterBuffer(min_delay_ms=jitter_min_ms, max_delay_ms=jitter_max_ms)
        self.vad = Vad() if vad else None
        self.dtmf_sender = Rfc4733Sender()
        self.dtmf_receiver = Rfc4733Receiver(self._digit)
        self.dtmf_listeners: list[Callable[[DtmfEvent], None]] = []
        self.sending = True      # False while the peer holds us (sendonly/inactive)
        self._pending = b""
        self._fifo = b""
        self._talkspurt = True
        self._cn: bytes | None = None
        self._sid_age = 0
        self.underflow_frames = 0
        self.vad_suppressed = 0
        self.bad_payloads = 0
        self.port = None         # the listening UDP port (IListeningPort), for polled receive
        self._polled = False
        self._inbox: list = []   # datagrams read by drain(), not yet handled
        stream.on_packet = self._on_packet

    # -- polled receive ------------------------------------------------------------
    def set_polled(self, on: bool) -> None:
        """Read the RTP socket from the tick instead of from the reactor.

        With hundreds of calls, one reactor wake-up per received packet costs
        more than the media work itself; draining each socket once per 20 ms
        tick (packets wait in the kernel buffer meanwhile) removes those
        wake-ups.  Playout happens on the tick anyway, so no delay is added;
        arrival times are quantised to the tick, which the jitter buffer sees
        as at most one packet time of jitter."""
        port, reactor = self.port, self.clock
        if port is None or on == self._polled or not hasattr(reactor, "removeReader"):
            return
        if on:
            reactor.removeReader(port)
        else:
            self.deliver()  # nothing drained is left behind
            if getattr(port, "connected", True):
                reactor.addReader(port)
        self._polled = on

    def poll(self, limit: int = 16) -> None:
        """Drain the socket (bounded: at most ``limit`` packets per tick) and
        handle what was read."""
        self.drain(limit)
        self.deliver()

    # -- negotiation -------------------------------------------------------------
    def configure(self, codec: Codec, *, dtmf_pt: int | None = 101, ptime: int = 20,
                  remote_ptime: int | None = None) -> None:
        """Apply the negotiated codec (call start or re-INVITE); stream state carries on."""
        if self.codec is None or codec.name != self.codec.name:
            self.encoder = codec.new_encoder(vad=self.vad is not None)
            self.decoder = codec.new_decoder()
            self._pending = b""
            self._fifo = b""
        self.codec = codec
        self._codec_pt = codec.payload_type
        self.dtmf_pt = dtmf_pt
        self.ptime = max(ptime, codec.min_ptime)
        self.remote_ptime = remote_ptime or self.ptime
        if self.jb.packet_ms != self.remote_ptime:
            self.jb = JitterBuffer(packet_ms=self.remote_ptime, min_delay_ms=self.jitter_min_ms,
                                   max_delay_ms=self.jitter_max_ms)
        pts = {codec.payload_type, CN_PAYLOAD_TYPE}
        if dtmf_pt is not None:
            pts.add(dtmf_pt)
            self.dtmf_sender.payload_type = dtmf_pt
        self.stream.set_payload_types(pts)

    # -- receive -------------------------------------------------------------------
    def _on_packet(self, pkt: RtpPacket) -> None:
        if pkt.payload_type == self.dtmf_pt:
            self.dtmf_receiver.packet(pkt)
            self._dtmf_heard = True
            return
        self.dtmf_receiver.flush()
        if pkt.payload_type == CN_PAYLOAD_TYPE:
            self._cn = pkt.payload[:1] or b"\x7f"
            return
        self._cn = None
        self.jb.put(pkt.sequence, pkt.timestamp, pkt.payload, self.clock.seconds())

    def _digit(self, event: DtmfEvent) -> None:
        for fn in list(self.dtmf_listeners):
            fn(event)

    def _fill_gap(self) -> bytes:
        """A frame for an empty jitter buffer: comfort noise after an RFC 3389
        SID, else the decoder's concealment (called from ``receive_frame``)."""
        if self._cn is not None:
            return comfort_noise(self._cn, FRAME_SAMPLES)
        return self.decoder.conceal(FRAME_SAMPLES)

    # -- send ----------------------------------------------------------------------
    def _send_frame_slow(self, pcm: bytes) -> None:
        """``send_frame`` beyond the plain case: held, DTMF, VAD, other packet times."""
        stream = self.stream
        if not self.sending:
            stream.skip(FRAME_SAMPLES)
            return
        self._dtmf_active = self.dtmf_sender.busy
        if self._dtmf_active and self.dtmf_sender.tick(stream):
            self._pending = b""
            self._talkspurt = True
            return
        self._pending += pcm
        need = self.ptime * 16
        if len(self._pending) < need:
            return
        chunk, self._pending = self._pending[:need], self._pending[need:]
        samples = len(chunk) // 2
        if self.vad is not None and not self.vad.is_speech(chunk):
            if self.codec.name != "G729":  # G.729B does its own DTX/SID
                if not self._talkspurt or self._sid_age >= SID_INTERVAL:
                    # RFC 3389: a SID at the start of silence, then now and then
                    stream.send(bytes([noise_level(chunk)]), CN_PAYLOAD_TYPE, samples)
                    self._sid_age = 0
                else:
                    stream.skip(samples)
                    self._sid_age += 1
                self._talkspurt = True
                self.vad_suppressed += 1
                return
        payload = self.encoder.encode(chunk)
        if not payload:
            stream.skip(samples)
            self._talkspurt = True
            return
        stream.send(payload, self.codec.payload_type, samples, marker=self._talkspurt)
        self._talkspurt = False

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        self.dtmf_sender.queue(digit, duration_ms)
        self._dtmf_active = True

    def figures(self) -> dict:
        out = self.stream.figures()
        out.update(self.jb.figures())
        out.update(codec=self.codec.name if self.codec else None,
                   vad_suppressed=self.vad_suppressed, bad_payloads=self.bad_payloads)
        return out


class PcmPlayer:
    """Plays a fixed PCM buffer frame by frame (in-band DTMF, prompts); same
    ``frame()``/``finished`` shape as :class:`~goip_tw.media.tones.ToneGenerator`."""

    def __init__(self, pcm: bytes):
        self._pcm = pcm
        self._pos = 0

    @property
    def finished(self) -> bool:
        return self._pos >= len(self._pcm)

    def remaining(self) -> bytes:
        return self._pcm[self._pos:]

    def frame(self, samples: int = FRAME_SAMPLES) -> bytes:
        chunk = self._pcm[self._pos:self._pos + 2 * samples]
        self._pos += 2 * samples
        return chunk + bytes(2 * samples - len(chunk))


class LineMedia(LineCore):
    """The module's voice port with per-line input/output gain."""

    def __init__(self, port, *, input_gain_db: float = 0.0, output_gain_db: float = 0.0):
        self.port = port
        self.gain_in = Gain(input_gain_db)
        self.gain_out = Gain(output_gain_db)
        self.underruns = 0


class Session(SessionCore):
    """Everything the ticker does for one line and/or one leg."""

    def __init__(self, ticker, line: LineMedia | None = None, leg: LegMedia | None = None):
        self.ticker = ticker
        self.line = line
        self.leg = leg
        self.bridged = False
        self.line_tone = None
        self.leg_tone = None
        self.line_taps: list[Callable[[bytes], None]] = []
        self.leg_taps: list[Callable[[bytes], None]] = []
        self.one_way = OneWayAudio()
        self._sub = None
        self._up: bytes | None = None  # the last line frame read (the meter's, in receive)

    @property
    def idle(self) -> bool:
        return not (self.bridged or self.line_tone or self.leg_tone or self.line_taps
                    or self.leg_taps)

    def update(self) -> None:
        """Subscribe to or leave the ticker depending on whether there is work."""
        if self.idle:
            if self._sub is not None:
                self.ticker.unsubscribe(self._sub)
                self._sub = None
                if self.leg is not None:
                    self.leg.set_polled(False)
        elif self._sub is None:
            self._sub = self.ticker.subscribe_session(self)
            if self.leg is not None:
                self.leg.set_polled(True)

    def stop(self) -> None:
        self.bridged = False
        self.line_tone = self.leg_tone = None
        self.line_taps.clear()
        self.leg_taps.clear()
        self.update()
