"""Pseudo-terminal transport for simulated modules.

A simulated module owns the *master* side of a pty; the gateway (or gammu, or
minicom) opens the *slave* path exactly as it would open ``/dev/ttyUSB2``.  The
master fd is driven by the reactor (``addReader``/``addWriter`` through
``twisted.internet.abstract.FileDescriptor``), so no threads are involved.

We keep our own handle on the slave open for the life of the port.  Without it
the master reads fail with ``EIO`` every time the client closes the device,
which a real USB serial port never does.  Closing both ends is how an unplug is
simulated: the client's next read returns ``EIO``/EOF like a vanished ttyUSB.
"""

from __future__ import annotations

import errno
import fcntl
import os
import termios
import tty

from twisted.internet import abstract, fdesc
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: Unread bytes we let pile up before dropping new writes.  A real USB serial
#: driver also loses what nobody reads; without a cap a voice port that nobody
#: opened would grow without bound.
DEFAULT_UNREAD_LIMIT = 16 * 1024


class PtyPort(abstract.FileDescriptor):
    """One end of a simulated serial device.

    ``protocol`` needs ``data_received(bytes)``; ``port_closed()`` is called
    when the port goes away (``close()`` or a read error).
    """

    def __init__(self, reactor, protocol, *, name="pty", unread_limit=DEFAULT_UNREAD_LIMIT):
        super().__init__(reactor)
        self.protocol = protocol
        self.name = name
        self.unread_limit = unread_limit
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        fdesc.setNonBlocking(self._master)
        self.path = os.ttyname(self._slave)
        self.connected = 1
        self.closed = False
        self.dropped = 0
        self.startReading()

    def fileno(self):
        return self._master if not self.closed else -1

    def doRead(self):
        return fdesc.readFromFD(self._master, self._data_received)

    def _data_received(self, data):
        try:
            self.protocol.data_received(data)
        except Exception:
            log.failure("simulator {name}: error handling input", name=self.name)

    def writeSomeData(self, data):
        return fdesc.writeToFD(self._master, data)

    def unread_bytes(self) -> int:
        """Bytes written by us that the client has not read yet."""
        if self.closed:
            return 0
        try:
            buf = bytearray(4)
            fcntl.ioctl(self._slave, termios.FIONREAD, buf)
            return int.from_bytes(buf, "little")
        except OSError:
            return 0

    def pending_bytes(self) -> int:
        """Bytes still queued in our own write buffer."""
        return self._tempDataLen + len(self.dataBuffer) - self.offset

    def write(self, data):
        """Queue ``data`` whole, or drop it whole when the client has stopped
        reading (more than ``unread_limit`` bytes waiting).  Never a part: a
        voice stream must keep its 16-bit sample alignment."""
        if self.closed or not data:
            return
        if self.unread_bytes() + self.pending_bytes() + len(data) > self.unread_limit:
            self.dropped += len(data)
            return
        super().write(data)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self._close_fds()
        closed = getattr(self.protocol, "port_closed", None)
        if closed is not None:
            closed(self)

    def close(self):
        """Close both ends now (simulates the device disappearing)."""
        if self.closed:
            return
        self.stopReading()
        self.stopWriting()
        self.connectionLost(Failure(OSError(errno.ENODEV, "device removed")))

    def _close_fds(self):
        if self.closed:
            return
        self.closed = True
        self.connected = 0
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def logPrefix(self):
        return f"PtyPort({self.name})"
