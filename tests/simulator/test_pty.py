"""The pty transport on its own: raw line, stable path, bounded buffers."""

import os
import select
import termios

from twisted.internet.testing import MemoryReactorClock

from goip_tw.simulator.pty import PtyPort

from .conftest import pump


class Recorder:
    def __init__(self):
        self.data = b""
        self.closed = 0

    def data_received(self, data):
        self.data += data

    def port_closed(self, port):
        self.closed += 1


def test_raw_bytes_both_ways_and_close():
    r = MemoryReactorClock()
    proto = Recorder()
    port = PtyPort(r, proto, name="t")
    fd = os.open(port.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        assert not attrs[3] & termios.ECHO and not attrs[3] & termios.ICANON
        os.write(fd, b"AT\r\x1a\x1b\x00\xff")
        select.select([port.fileno()], [], [], 1.0)  # wait for the kernel to pass it on
        pump(r)
        assert proto.data == b"AT\r\x1a\x1b\x00\xff"  # no line discipline in between
        port.write(b"\r\nOK\r\n\x00\xff")
        pump(r)
        select.select([fd], [], [], 1.0)
        assert os.read(fd, 100) == b"\r\nOK\r\n\x00\xff"
        port.close()
        assert proto.closed == 1 and port.fileno() == -1
        assert port not in r.readers
        port.close()  # idempotent
        port.write(b"ignored after close")
    finally:
        os.close(fd)


def test_nobody_reading_keeps_buffers_bounded():
    r = MemoryReactorClock()
    port = PtyPort(r, Recorder(), name="voice", unread_limit=4096)
    try:
        for _ in range(200):
            port.write(bytes(320))
            pump(r, rounds=1)
        # The kernel moves pty data asynchronously, so FIONREAD may lag a little.
        assert port.unread_bytes() + port.pending_bytes() <= 2 * 4096
        assert port.dropped >= 200 * 320 - 3 * 4096
        # Only whole writes are dropped: the stream stays frame aligned.
        assert port.dropped % 320 == 0
    finally:
        port.close()
