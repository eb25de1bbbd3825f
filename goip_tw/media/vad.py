"""Voice activity, per-line gain and the one-way-audio energy meter (F-440, F-1602).

:class:`Vad` decides per 20 ms frame whether the module side is talking, from
the frame level against an adaptive noise floor, with a hangover so word
endings are not clipped; while silent the bridge sends no RTP (F-440 silence
suppression) and marks the first packet of each talkspurt (RFC 3551 s. 4.1).

:class:`EnergyMeter` keeps the level of one direction; :class:`OneWayAudio`
compares both directions of a call and raises a flag when one of them has
been silent for ``window_s`` while the other carried speech - the classic
symptom of a broken media path (NAT, wrong address in SDP, muted module).
Both run for every bridged call on every tick, so they are Cython classes
(``_meter.pyx``); Cython code cimports them through ``_meter.pxd``.
"""

from __future__ import annotations

from collections import deque

from goip_tw.media import _dsp
from goip_tw.media._meter import EnergyMeter, OneWayAudio  # noqa: F401 (re-exported)
from goip_tw.media.levels import db_to_gain, dbm0


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
