"""The module's voice port as a 20 ms frame source/sink (:class:`IFramePort`).

Quectel EC2x after ``AT+QPCMV=1,0`` and SIMCom SIM7600 after ``AT+CPCMREG=1`` carry
call audio on a USB serial port as raw 8 kHz, 16-bit little-endian mono PCM (Quectel
"Voice over USB and UAC Application Note", SIMCom "USB Audio Application Note");
Huawei after ``AT^CVOICE=0`` does the same on its PCM port.  This class cuts the byte
stream into 320-byte frames for the media bridge (goip_tw/media/bridge.py), which
pulls one frame and writes one frame per 20 ms tick.

Both directions are bounded: at most ``max_frames`` captured frames are kept (the
oldest is dropped and counted), and frames written while the tty's write buffer is
full (the module stopped reading) are dropped, so latency cannot grow.
"""

from __future__ import annotations

from twisted.internet import interfaces, protocol
from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.media.interfaces import FRAME_BYTES, FrameQueue, IFramePort

log = Logger()


@implementer(IFramePort, interfaces.IPushProducer)
class VoicePort(protocol.Protocol):
    def __init__(self, *, max_frames: int = 10, name: str = "voice"):
        self.name = name
        self._captured = FrameQueue(max_frames, keep_written=0)
        self._paused = False
        self.closed = True
        self.dropped_writes = 0
        self.frames_in = 0
        self.frames_out = 0
        self._close_observers = []

    # -- IFramePort
    @property
    def overflows(self) -> int:
        """Captured frames dropped because nobody read them in time."""
        return self._captured.overflows

    def read_frame(self):
        return self._captured.read_frame()

    def write_frame(self, frame: bytes) -> None:
        if self.closed or self.transport is None:
            return
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"voice frame must be {FRAME_BYTES} bytes, got {len(frame)}")
        if self._paused:
            self.dropped_writes += 1
            return
        self.frames_out += 1
        self.transport.write(frame)

    def pending(self) -> int:
        return self._captured.pending()

    def clear(self) -> None:
        """Forget captured audio (call start/end) so no stale frames leak across calls."""
        self._captured.clear()

    # -- protocol
    def connectionMade(self):
        self.closed = False
        try:
            self.transport.registerProducer(self, True)
        except Exception:  # transports without producer support (StringTransport)
            pass

    def dataReceived(self, data: bytes):
        self.frames_in += self._captured.push(data)

    def connectionLost(self, reason=None):
        self.closed = True
        self.clear()
        for fn in list(self._close_observers):
            fn(self)

    def add_close_observer(self, fn):
        self._close_observers.append(fn)

    def close(self):
        if self.transport is not None and not self.closed:
            self.transport.loseConnection()

    # -- IPushProducer (the tty's write buffer tells us when the module stops reading)
    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False

    def stopProducing(self):
        self._paused = True


def open_voice_port(reactor, path: str, *, baudrate: int = 115200, name: str = "voice") -> VoicePort:
    """Open the voice tty (real or simulator pty) and return its frame port."""
    from twisted.internet.serialport import SerialPort
    port = VoicePort(name=name)
    SerialPort(port, path, reactor, baudrate=baudrate)
    return port
