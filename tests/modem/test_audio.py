"""Voice port: 20 ms frames over a pty, bounded both ways, and a real simulated call."""

import os

import pytest
import pytest_twisted
from twisted.internet import reactor

from goip_tw.media.interfaces import FRAME_BYTES, IFramePort
from goip_tw.modem.audio import VoicePort, open_voice_port
from goip_tw.simulator.audio import dominant_frequency, rms

from .simhelp import PHONE, booted, make_network, wait_until


@pytest.fixture
def pty():
    master, slave = os.openpty()
    import tty
    tty.setraw(slave)
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def _reader(fd):
    """Non-blocking reads from the pty master, polled by wait_until."""
    from twisted.internet import fdesc
    fdesc.setNonBlocking(fd)
    buf = bytearray()

    def poll():
        try:
            buf.extend(os.read(fd, 4096))
        except BlockingIOError:
            pass
        return buf
    return poll


@pytest_twisted.inlineCallbacks
def test_frames_cut_and_written_over_pty(pty):
    master, path = pty
    port = open_voice_port(reactor, path)
    try:
        assert IFramePort.providedBy(port)
        os.write(master, bytes(range(256)) * 5)  # 1280 bytes = 4 frames
        os.write(master, b"\x01" * 100)           # partial frame kept
        yield wait_until(lambda: port.pending() == 4, what="4 frames")
        frames = [port.read_frame() for _ in range(4)]
        assert all(len(f) == FRAME_BYTES for f in frames)
        assert b"".join(frames) == (bytes(range(256)) * 5)
        assert port.read_frame() is None
        port.write_frame(b"\x02" * FRAME_BYTES)
        poll = _reader(master)
        yield wait_until(lambda: len(poll()) >= FRAME_BYTES, what="frame at modem side")
        assert bytes(poll()) == b"\x02" * FRAME_BYTES
        with pytest.raises(ValueError):
            port.write_frame(b"short")
    finally:
        port.close()
        yield wait_until(lambda: port.closed, what="closed")


def test_capture_is_bounded():
    port = VoicePort(max_frames=3)
    port.dataReceived(b"\x00" * FRAME_BYTES * 10 + b"\x01" * 7)
    assert port.pending() == 3 and port.overflows == 7
    port.clear()
    assert port.read_frame() is None


@pytest_twisted.inlineCallbacks
def test_call_audio_arrives_on_voice_port():
    net = make_network()
    net.add_remote_phone(PHONE, answer_after=0.05, audio="tone:1000")
    rig = yield booted(net, "quectel")
    voice = open_voice_port(reactor, rig.module.audio_path)
    try:
        rig.modem.call_poll_interval = 0.05
        yield rig.modem.initialise()
        yield wait_until(lambda: rig.module.registered)
        yield rig.modem.dial(PHONE)
        yield wait_until(lambda: any(c.state == "active" for c in rig.modem.calls))
        frames = []

        def grab():
            f = voice.read_frame()
            if f is not None:
                frames.append(f)
                voice.write_frame(f)  # send something back up as well
            return len(frames) >= 10
        yield wait_until(grab, timeout=5, step=0.02, what="10 frames")
        pcm = b"".join(frames[-5:])
        assert rms(pcm) > 1000
        assert 900 < dominant_frequency(pcm) < 1100
        yield rig.modem.hangup()
    finally:
        voice.close()
        yield rig.close()
        net.stop()
        yield wait_until(lambda: voice.closed)
