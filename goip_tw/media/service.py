"""The media service: RTP ports, SDP offer/answer, bridges, tones and detectors.

This is the object the call controller knows as its media side
(``goip_tw/calls/interfaces.py`` ``IMediaSide`` plus the SDP hooks
``local_sdp``/``remote_sdp``/``release``/``codec_of`` that
``goip_tw/calls/sipside.py`` uses).  Legs are keyed by the call layer's leg
object; lines by line number, whose voice port comes from ``voice_port_of``.
``build_service(gateway)`` wires it from the config (F-440, F-427, F-404,
F-1602, F-208).  ``media.dtmf_mode`` is the default; the call layer gives each leg
its line's mode with ``set_dtmf_mode`` (F-427 per line, ``[[calls.lines]]``).
"""

from __future__ import annotations

import socket
import time
from typing import Callable

import attrs
from twisted.application import service
from twisted.logger import Logger

from goip_tw.config.sections.media import DTMF_MODES
from goip_tw.media import codecs, srtp, tones
from goip_tw.media.bridge import LegMedia, LineMedia, PcmPlayer, Session
from goip_tw.media.dtmf import DtmfDetector, DtmfEvent, generate
from goip_tw.media.ports import PortAllocator
from goip_tw.media.rtcp import RtcpProtocol
from goip_tw.media.rtp import RtpStream
from goip_tw.media.ticker import Ticker
from goip_tw.sip import sdp

log = Logger()

TONE_KINDS = {"dial": "dial", "ringback": "ringback", "busy": "busy",
              "waiting": "call_waiting", "call_waiting": "call_waiting"}


@attrs.frozen
class Stats:
    """Same fields as ``goip_tw.calls.interfaces.MediaStats`` (plus the details)."""

    codec: str | None = None
    loss: float | None = None
    jitter_ms: float | None = None
    one_way: bool = False
    details: dict = attrs.field(factory=dict, eq=False)


class _Handle:
    """IStoppable for a tone or detector: ``stop()`` is idempotent."""

    def __init__(self, undo: Callable[[], None]):
        self._undo = undo

    def stop(self):
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()


class _LegState:
    def __init__(self, media: LegMedia, rtp_port, rtcp_port, rtcp: RtcpProtocol, port: int):
        self.media = media
        self.rtp_port = rtp_port
        self.rtcp_port = rtcp_port
        self.rtcp = rtcp
        self.port = port
        self.offered: list[codecs.Codec] = []
        self.local_crypto: srtp.CryptoAttribute | None = None
        self.version = 0


def primary_address() -> str:
    """The address the host would use to reach the outside (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1; connect() on UDP sends nothing
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class MediaService(service.Service):
    name = "media"

    def __init__(self, reactor, config, *, voice_port_of: Callable[[int], object] = lambda n: None,
                 interface: str = "0.0.0.0", address: str | None = None,
                 now: Callable[[], float] = time.monotonic):
        self.reactor = reactor
        self.config = config
        self.voice_port_of = voice_port_of
        self.interface = interface
        self.address = address or config.public_address or (
            interface if interface not in ("0.0.0.0", "::") else primary_address())
        self.ticker = Ticker(reactor, now=now)
        self.ports = PortAllocator(config.rtp_port_min, config.rtp_port_max)
        self._legs: dict[object, _LegState] = {}
        #: F-427 per line: the mode the call layer chose for a leg (its line's mode)
        self._dtmf_modes: dict[object, str] = {}
        self._line_sessions: dict[int, Session] = {}
        self._leg_sessions: dict[object, Session] = {}

    # -- config -----------------------------------------------------------------------
    def codec_order(self) -> list[codecs.Codec]:
        return codecs.available(self.config.codecs)

    def _gain(self, values, line: int) -> float:
        return float(values[line - 1]) if 0 < line <= len(values) else 0.0

    def set_dtmf_mode(self, leg, mode: str) -> None:
        """Use ``mode`` (rfc4733, info, inband) for this leg instead of media.dtmf_mode:
        the call layer calls it with the leg's line mode (F-427 per line) before
        any SDP is written, since only rfc4733 offers/accepts telephone-event."""
        if mode not in DTMF_MODES:
            log.warn("media: dtmf_mode {mode!r} for call {call_id} is not one of {modes}; "
                     "using media.dtmf_mode", mode=mode, modes=", ".join(DTMF_MODES),
                     call_id=getattr(leg, "call_id", None))
            self._dtmf_modes.pop(leg, None)
            return
        self._dtmf_modes[leg] = mode

    def dtmf_mode(self, leg=None) -> str:
        """The leg's DTMF mode, else the global media.dtmf_mode."""
        mode = self._dtmf_modes.get(leg) if leg is not None else None
        return mode or self.config.dtmf_mode

    def tone_spec(self, kind: str) -> tones.ToneSpec:
        kind = TONE_KINDS.get(kind, kind)
        custom = getattr(self.config, f"custom_{kind}_tone", "")
        if custom:
            return tones.parse_tone(custom)
        return tones.preset(self.config.tone_standard, kind)

    # -- legs and SDP ------------------------------------------------------------------
    def _open_leg(self, leg) -> _LegState:
        cfg = self.config
        stream = RtpStream(self.reactor, payload_types=(), timeout=cfg.rtp_timeout,
                           on_timeout=lambda: self._rtp_timeout(leg))
        rtcp = RtcpProtocol(stream, self.reactor)
        rtp_port, rtcp_port = self.ports.listen_pair(self.reactor, stream, rtcp,
                                                     interface=self.interface)
        media = LegMedia(self.reactor, stream, jitter_min_ms=cfg.jitter_min_ms,
                         jitter_max_ms=cfg.jitter_max_ms, vad=cfg.vad)
        media.port = rtp_port
        media.dtmf_listeners.append(lambda ev: self._leg_dtmf(leg, ev))
        state = _LegState(media, rtp_port, rtcp_port, rtcp, rtp_port.getHost().port)
        self._legs[leg] = state
        return state

    def _state(self, leg) -> _LegState:
        state = self._legs.get(leg)
        return state if state is not None else self._open_leg(leg)

    def local_sdp(self, leg, offer: bytes | None) -> bytes:
        """Our offer (``offer`` None) or our answer to ``offer``; SdpError means 488."""
        cfg = self.config
        st = self._state(leg)
        st.version += 1
        dtmf_pt = cfg.dtmf_payload_type if self.dtmf_mode(leg) == "rfc4733" else None
        if offer is None:
            st.offered = self.codec_order()
            if cfg.srtp != "off" and st.local_crypto is None:
                st.local_crypto = srtp.new_crypto(1)
            return sdp.build_audio(self.address, st.port, st.offered, dtmf_pt=dtmf_pt,
                                   ptime=cfg.ptime, cn=cfg.vad, session_id=st.port,
                                   version=st.version,
                                   crypto=st.local_crypto.to_sdp() if st.local_crypto else None)
        desc = sdp.parse_audio(offer)
        order = self.codec_order()
        shared = sdp.negotiate(desc, order)
        if not shared:
            raise sdp.NoCommonCodec("m", "no codec in common with the offer")
        # F-440: the operator's codec order decides among the codecs both sides have.
        rank = {c.name: i for i, c in enumerate(order)}
        codec = min(shared, key=lambda c: rank[c.name])
        remote_dtmf = desc.telephone_event_pt() if dtmf_pt is not None else None
        crypto_line = self._answer_crypto(st, desc)
        st.media.configure(codec, dtmf_pt=remote_dtmf, ptime=max(cfg.ptime, desc.ptime or 0),
                           remote_ptime=desc.ptime)
        self._apply_remote(st, desc)
        return sdp.build_audio(self.address, st.port, [codec], dtmf_pt=remote_dtmf,
                               ptime=st.media.ptime,
                               direction=sdp.answer_direction(desc.direction),
                               crypto=crypto_line, session_id=st.port, version=st.version,
                               answer_to=desc)

    def _answer_crypto(self, st: _LegState, desc: sdp.AudioDescription) -> str | None:
        mode = self.config.srtp
        if desc.profile == "RTP/SAVP" and desc.crypto:
            if mode == "off":
                raise sdp.SdpError("crypto", "SRTP offered but media encryption is off")
            remote = srtp.choose(list(desc.crypto))
            if st.local_crypto is None:
                st.local_crypto = srtp.new_crypto(remote.tag)
            local = attrs.evolve(st.local_crypto, tag=remote.tag)
            st.media.stream.srtp = srtp.SrtpContext(local, remote)
            return local.to_sdp()
        if mode == "mandatory":
            raise sdp.SdpError("crypto", "encryption is mandatory and the offer has no crypto")
        st.media.stream.srtp = None
        return None

    def remote_sdp(self, leg, answer: bytes) -> bool:
        """The far end's answer to our offer (183 or 200).

        Returns False (and logs which field was wrong) for an unusable answer, so a
        bad peer never raises into the SIP layer; the caller should end the call."""
        try:
            self._remote_sdp(leg, answer)
        except (sdp.SdpError, srtp.SrtpError) as e:
            log.warn("media: unusable SDP answer on call {call_id}: {error}",
                     call_id=getattr(leg, "call_id", None), error=e)
            return False
        return True

    def _remote_sdp(self, leg, answer: bytes) -> None:
        st = self._state(leg)
        desc = sdp.parse_audio(answer)
        offered = st.offered or self.codec_order()
        shared = sdp.negotiate(desc, offered)
        if not shared:
            raise sdp.NoCommonCodec("m", "the answer has no codec we offered")
        if st.local_crypto is not None and desc.crypto:
            st.media.stream.srtp = srtp.SrtpContext(st.local_crypto, srtp.choose(list(desc.crypto)))
        elif self.config.srtp == "mandatory":
            raise sdp.SdpError("crypto", "encryption is mandatory and the answer has no crypto")
        dtmf_pt = desc.telephone_event_pt() if self.dtmf_mode(leg) == "rfc4733" else None
        st.media.configure(shared[0], dtmf_pt=dtmf_pt,
                           ptime=max(self.config.ptime, desc.ptime or 0), remote_ptime=desc.ptime)
        self._apply_remote(st, desc)

    def _apply_remote(self, st: _LegState, desc: sdp.AudioDescription) -> None:
        held = desc.direction in ("sendonly", "inactive") or desc.address in ("0.0.0.0", "::")
        st.media.sending = desc.direction in ("sendrecv", "recvonly") and not held
        if desc.port and desc.address not in ("0.0.0.0", "::"):
            addr = (desc.address, desc.port)
            if st.media.stream.remote != addr or not st.media.stream.latched:
                st.media.stream.set_remote(addr)
        if st.media.stream.started_at is None:
            st.media.stream.start()
            st.rtcp.start()

    def codec_of(self, leg) -> str | None:
        st = self._legs.get(leg)
        return st.media.codec.name if st is not None and st.media.codec else None

    def release(self, leg) -> None:
        """The leg ended: stop its media and free its ports."""
        session = self._leg_sessions.pop(leg, None)
        if session is not None:
            session.stop()
            if session.line is not None and self._line_sessions.get(self._line_of(session)) is session:
                self._line_sessions.pop(self._line_of(session))
        self._dtmf_modes.pop(leg, None)
        st = self._legs.pop(leg, None)
        if st is None:
            return
        st.media.stream.stop()
        st.rtcp.stop(send_bye=True)
        st.rtp_port.stopListening()
        if st.rtcp_port is not None:
            st.rtcp_port.stopListening()
        self.ports.release(st.port)

    def _line_of(self, session: Session):
        for n, s in self._line_sessions.items():
            if s is session:
                return n
        return None

    def _rtp_timeout(self, leg) -> None:
        log.warn("media: RTP timeout on call {call_id}", call_id=getattr(leg, "call_id", None))
        listener = getattr(leg, "listener", None)
        try:
            leg.hangup()
        finally:
            if listener is not None and hasattr(listener, "leg_ended"):
                listener.leg_ended(leg, None, "RTP timeout")

    def _leg_dtmf(self, leg, event: DtmfEvent) -> None:
        listener = getattr(leg, "listener", None)
        if listener is not None and hasattr(listener, "leg_dtmf"):
            listener.leg_dtmf(leg, event.digit)

    def send_dtmf(self, leg, digit: str, duration_ms: int = 100) -> bool:
        """Send a digit to the SIP side as RFC 4733 or, in in-band mode, as tones in
        the audio; False when neither applies (the caller then uses SIP INFO)."""
        st = self._legs.get(leg)
        if st is None:
            return False
        if self.dtmf_mode(leg) == "inband":
            s = self._leg_session(leg)
            pause = bytes(2 * 8 * 60)
            pending = s.leg_tone.remaining() if isinstance(s.leg_tone, PcmPlayer) else b""
            s.leg_tone = PcmPlayer(pending + generate(digit, max(40, duration_ms)) + pause)
            s.update()
            return True
        if st.media.dtmf_pt is None:
            return False
        st.media.send_dtmf(digit, duration_ms)
        return True

    # -- sessions ----------------------------------------------------------------------
    def _line_media(self, line: int) -> LineMedia | None:
        port = self.voice_port_of(line)
        if port is None:
            log.warn("media: line {line} has no voice port", line=line)
            return None
        cfg = self.config
        return LineMedia(port, input_gain_db=self._gain(cfg.input_gain_db, line),
                         output_gain_db=self._gain(cfg.output_gain_db, line))

    def _line_session(self, line: int) -> Session:
        s = self._line_sessions.get(line)
        if s is None:
            s = self._line_sessions[line] = Session(self.ticker, line=self._line_media(line))
        return s

    def _leg_session(self, leg) -> Session:
        s = self._leg_sessions.get(leg)
        if s is None:
            s = self._leg_sessions[leg] = Session(self.ticker, leg=self._state(leg).media)
        return s

    def bridge(self, line: int, leg):
        """Join the line's voice port and the leg's RTP both ways; ``stop()`` -> Stats."""
        ls, gs = self._line_sessions.get(line), self._leg_sessions.get(leg)
        if ls is not None and ls is gs:
            s = ls
        else:
            s = Session(self.ticker, line=ls.line if ls else self._line_media(line),
                        leg=self._state(leg).media)
            for old in (ls, gs):
                if old is not None:
                    s.line_taps += old.line_taps
                    s.leg_taps += old.leg_taps
                    s.line_tone = s.line_tone or old.line_tone
                    s.leg_tone = s.leg_tone or old.leg_tone
                    old.stop()
            # the line and the leg now belong to ``s`` only: never two sessions reading
            # one voice port (call waiting swaps legs on a line)
            if ls is not None:
                ls.line = None
            if gs is not None:
                gs.leg = None
            self._line_sessions[line] = s
            self._leg_sessions[leg] = s
        s.bridged = True
        s.update()
        return _BridgeHandle(self, s, leg)

    def tone_to_line(self, line: int, tone: str):
        """Play ``tone`` to the mobile caller; the tone replaces bridged audio until stopped."""
        return self._tone(self._line_session(line), "line_tone", tone)

    def tone_to_leg(self, leg, tone: str):
        """Play ``tone`` into the leg's RTP (two-stage dialing, VoIP side)."""
        return self._tone(self._leg_session(leg), "leg_tone", tone)

    def _tone(self, session: Session, slot: str, tone: str):
        gen = tones.ToneGenerator(self.tone_spec(tone))
        setattr(session, slot, gen)
        session.update()

        def undo():
            if getattr(session, slot) is gen:
                setattr(session, slot, None)
                session.update()
        return _Handle(undo)

    def detect_line_dtmf(self, line: int, callback):
        s = self._line_session(line)
        return self._detector(s, s.line_taps, callback)

    def detect_leg_dtmf(self, leg, callback):
        s = self._leg_session(leg)
        return self._detector(s, s.leg_taps, callback)

    def _detector(self, session: Session, taps: list, callback):
        det = DtmfDetector(lambda ev: callback(ev.digit))
        taps.append(det.feed)
        session.update()

        def undo():
            if det.feed in taps:
                taps.remove(det.feed)
            session.update()
        return _Handle(undo)

    def calls_media(self, calls_service=None):
        """The IMediaSide for the call controller (goip_tw/calls/mediaside.py asks for it)."""
        return self

    # -- status ------------------------------------------------------------------------
    def figures(self) -> dict:
        return {"calls": len(self._legs), "ticker_streams": len(self.ticker),
                "ports_in_use": len(self.ports.in_use), "port_capacity": self.ports.capacity,
                "codecs": codecs.status()}

    def stopService(self):
        for leg in list(self._legs):
            self.release(leg)
        for s in list(self._line_sessions.values()):
            s.stop()
        self._line_sessions.clear()
        self.ticker.close()  # no timerfd reader left in the reactor
        return super().stopService()


class _BridgeHandle:
    def __init__(self, svc: MediaService, session: Session, leg):
        self._svc = svc
        self._session = session
        self._leg = leg
        self._stats = None

    def stop(self):
        if self._stats is None:
            s = self._session
            s.bridged = False
            s.update()
            fig = s.leg.figures() if s.leg is not None else {}
            expected = fig.get("received", 0) + fig.get("lost", 0)
            self._stats = Stats(codec=fig.get("codec"),
                                loss=(fig.get("lost", 0) / expected) if expected else None,
                                jitter_ms=fig.get("jitter_ms"),
                                one_way=s.one_way.flag_count > 0,
                                details={**fig, **s.one_way.figures()})
        return self._stats

    def figures(self) -> dict:
        s = self._session
        out = s.leg.figures() if s.leg is not None else {}
        out.update(s.one_way.figures())
        return out


def build_service(gateway):
    """The media service for the gateway's service tree (subsystem name ``media``)."""
    cfg = gateway.config.media

    def voice_port_of(line: int):
        modems = gateway.subsystem("modems")
        ls = modems.line(line) if modems is not None and hasattr(modems, "line") else None
        port = getattr(ls, "voice", None)
        if port is None:
            calls = gateway.subsystem("calls")
            lines = getattr(calls, "lines", None)
            if lines is not None and hasattr(lines, "voice_port"):
                port = lines.voice_port(line)
        return port

    return MediaService(gateway.reactor, cfg, voice_port_of=voice_port_of)
