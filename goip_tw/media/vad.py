"""Voice activity, per-line gain and the one-way-audio energy meter (F-440, F-1602).

:class:`Vad` decides per 20 ms frame whether the module side is talking, from
the frame level against an adaptive noise floor, with a hangover so word
endings are not clipped; while silent the bridge sends no RTP (F-440 silence
suppression) and marks the first packet of each talkspurt (RFC 3551 s. 4.1).

:class:`EnergyMeter` keeps the level of one direction; :class:`OneWayAudio`
compares both directions of a call and raises a flag when one of them has
been silent for ``window_s`` while the other carried speech - the classic
symptom of a broken media path (NAT, wrong address in SDP, muted module).
"""

from __future__ import annotations

from collections import deque

from goip_tw.media import _dsp
from goip_tw.media.levels import ZERO_DBM0_MEAN_SQUARE, db_to_gain, dbm0


class Gain:
    """A fixed gain in dB with saturation; 0 dB passes frames through untouched."""

    def __init__(self, db: float = 0.0):
        if not -30.0 <= db <= 30.0:
            raise ValueError(f"gain {db} dB outside -30..30")
        self.db = db
        self._g = db_to_gain(db)

    def apply(self, pcm: bytes) -> bytes:
        if self.db == 0.0:
            return pcm
        return _dsp.scale(pcm, self._g)


class Vad:
    def __init__(self, threshold_dbm0: float = -45.0, margin_db: float = 9.0,
                 hangover_frames: int = 10, floor_frames: int = 75,
                 max_floor_dbm0: float = -35.0):
        self.threshold = threshold_dbm0
        self.margin = margin_db
        self.hangover = hangover_frames
        self.max_floor = max_floor_dbm0
        self._recent: deque[float] = deque(maxlen=floor_frames)
        self._hold = 0
        self.active = False

    @property
    def noise_floor(self) -> float:
        """Minimum frame level over the last 1.5 s (speech pauses expose the floor),
        capped so that loud steady audio is never mistaken for noise."""
        return min(min(self._recent), self.max_floor) if self._recent else -90.0

    def is_speech(self, pcm: bytes) -> bool:
        level = max(-90.0, dbm0(_dsp.energy(pcm)[0]))
        self._recent.append(level)
        if level > max(self.threshold, self.noise_floor + self.margin):
            self._hold = self.hangover
            self.active = True
        else:
            self.active = self._hold > 0
            self._hold = max(0, self._hold - 1)
        return self.active


class EnergyMeter:
    """Level of one direction: last frame, short average, and active frame count."""

    def __init__(self, active_dbm0: float = -50.0):
        self.active_dbm0 = active_dbm0
        self._active_ms = ZERO_DBM0_MEAN_SQUARE * 10 ** (active_dbm0 / 10)
        self._last_ms = 0.0
        self.peak = 0
        self._avg_ms = 0.0
        self.frames = 0
        self.active_frames = 0

    def update(self, pcm: bytes | None) -> bool:
        """Account one frame (``None`` = nothing arrived); returns whether it was active."""
        self.frames += 1
        if not pcm:
            self._last_ms = 0.0
            self._avg_ms *= 0.9
            return False
        ms, self.peak = _dsp.energy(pcm)
        self._last_ms = ms
        self._avg_ms = 0.9 * self._avg_ms + 0.1 * ms
        if ms > self._active_ms:
            self.active_frames += 1
            return True
        return False

    @property
    def level(self) -> float:
        """Level of the last frame in dBm0."""
        return dbm0(self._last_ms)

    @property
    def average_dbm0(self) -> float:
        return dbm0(self._avg_ms)


class OneWayAudio:
    """Flags a call whose one direction stays silent while the other talks.

    Fed one frame per direction per 20 ms tick; decides over sliding windows of
    ``window_s``.  ``flag`` is ``None``, ``"no_audio_from_rtp"`` or
    ``"no_audio_from_module"``."""

    def __init__(self, window_s: float = 10.0, frame_ms: int = 20, min_active_s: float = 1.0):
        self.window = int(window_s * 1000 / frame_ms)
        self.min_active = int(min_active_s * 1000 / frame_ms)
        self.rx = EnergyMeter()    # RTP -> module
        self.tx = EnergyMeter()    # module -> RTP
        self._n = 0
        self._rx_active = 0
        self._tx_active = 0
        self.flag: str | None = None
        self.flag_count = 0

    def update(self, from_rtp: bytes | None, from_module: bytes | None) -> str | None:
        self._rx_active += self.rx.update(from_rtp)
        self._tx_active += self.tx.update(from_module)
        self._n += 1
        if self._n >= self.window:
            if self._rx_active == 0 and self._tx_active >= self.min_active:
                new = "no_audio_from_rtp"
            elif self._tx_active == 0 and self._rx_active >= self.min_active:
                new = "no_audio_from_module"
            else:
                new = None
            if new and new != self.flag:
                self.flag_count += 1
            self.flag = new
            self._n = self._rx_active = self._tx_active = 0
        return self.flag

    def figures(self) -> dict:
        return {"rx_level_dbm0": round(self.rx.average_dbm0, 1),
                "tx_level_dbm0": round(self.tx.average_dbm0, 1),
                "one_way_audio": self.flag}
