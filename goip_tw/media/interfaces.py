"""The small contract between the media engine and whatever carries 8 kHz PCM.

The modem package (``goip_tw/modem/audio.py``) exposes the module's voice port as
an object with ``read_frame()`` and ``write_frame()``; the simulator and tests use
:class:`FrameQueue`.  Frames are 20 ms of 8 kHz, 16-bit signed little-endian mono
PCM: exactly :data:`FRAME_BYTES` bytes.  The bridge *pulls* one frame per 20 ms
tick from the source and *writes* one frame per tick to the sink, so the voice
port never needs its own timer; a push-style producer simply calls
:meth:`FrameQueue.push` from its ``dataReceived``.
"""

from __future__ import annotations

from collections import deque

from zope.interface import Attribute, Interface, implementer

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2


class IFrameSource(Interface):
    """Where uplink audio (module -> RTP) comes from."""

    def read_frame():
        """Return the next captured 320-byte frame, or ``None`` when none is ready.

        Must not block.  ``None`` is counted as an underrun and sent as silence
        (or nothing, with VAD)."""


class IFrameSink(Interface):
    """Where downlink audio (RTP -> module) goes."""

    def write_frame(frame):
        """Accept one 320-byte frame for playback.  Must not block."""


class IFramePort(IFrameSource, IFrameSink):
    """A full-duplex voice port (what ``goip_tw/modem/audio.py`` provides)."""

    closed = Attribute("True once the port can no longer carry audio.")


@implementer(IFramePort)
class FrameQueue:
    """A bounded in-memory voice port: ``push()`` frames in, ``read_frame()`` them out.

    Written frames are collected in ``written`` (bounded too), which makes it a
    loopback or recording stand-in for tests and the simulator.  When full, the
    oldest frame is dropped and counted: latency must not grow without bound.
    """

    def __init__(self, max_frames: int = 10, keep_written: int = 3000):
        self._in: deque[bytes] = deque()
        self.max_frames = max_frames
        self.written: deque[bytes] = deque(maxlen=keep_written)
        self.overflows = 0
        self.closed = False
        self._partial = b""

    def push(self, data: bytes) -> int:
        """Add captured PCM of any length; it is cut into whole frames.  Returns how
        many whole frames it made."""
        data = self._partial + data
        n = len(data) - len(data) % FRAME_BYTES
        self._partial = data[n:]
        for i in range(0, n, FRAME_BYTES):
            if len(self._in) >= self.max_frames:
                self._in.popleft()
                self.overflows += 1
            self._in.append(data[i:i + FRAME_BYTES])
        return n // FRAME_BYTES

    def pending(self) -> int:
        return len(self._in)

    def clear(self) -> None:
        self._in.clear()
        self._partial = b""

    def read_frame(self):
        return self._in.popleft() if self._in else None

    def write_frame(self, frame: bytes) -> None:
        self.written.append(frame)
