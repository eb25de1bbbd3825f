"""Hot plug (F-103): notice when a module's stable device path comes and goes.

Linux udev maintains ``/dev/serial/by-id`` symlinks; the simulator keeps equivalent
links in its link directory.  :class:`InotifyWatcher` watches each path's directory
with ``twisted.internet.inotify`` (create / delete / move / attribute changes of the
link) and calls back with the path.  The directory may not exist yet (no USB serial
device plugged at boot), so a slow poll (``replug_poll``) stays on as a fallback;
callers always re-check ``os.path.exists`` themselves.
"""

from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.python import filepath

log = Logger()


class InotifyWatcher:
    def __init__(self, reactor):
        self.reactor = reactor
        self._notifier = None
        self._dirs: dict[str, list] = {}

    def _ensure(self):
        if self._notifier is None:
            from twisted.internet import inotify
            self._notifier = inotify.INotify(reactor=self.reactor)
            self._notifier.startReading()
        return self._notifier

    def watch(self, path: str, callback) -> bool:
        """Call ``callback(path)`` on changes of ``path``'s directory entry (a basename
        of ``*`` means any entry of that directory).  Returns
        False when the directory cannot be watched (the caller's poll covers it)."""
        directory = os.path.dirname(path) or "."
        entry = (os.path.basename(path), callback)
        if directory in self._dirs:
            self._dirs[directory].append(entry)
            return True
        if not os.path.isdir(directory):
            return False
        try:
            from twisted.internet import inotify
            n = self._ensure()
            mask = (inotify.IN_CREATE | inotify.IN_DELETE | inotify.IN_MOVED_TO
                    | inotify.IN_MOVED_FROM | inotify.IN_ATTRIB)
            n.watch(filepath.FilePath(directory), mask=mask,
                    callbacks=[lambda _w, fp, _m, d=directory: self._changed(d, fp)])
        except Exception as exc:
            log.warn("inotify unavailable for {dir}: {err}", dir=directory, err=exc)
            return False
        self._dirs[directory] = [entry]
        return True

    def _changed(self, directory, fp):
        name = fp.basename()
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        for base, cb in list(self._dirs.get(directory, ())):
            if base == name or base == "*":
                try:
                    cb(os.path.join(directory, base))
                except Exception:
                    log.failure("hot plug callback failed for {name}", name=name)

    def unwatch(self, path: str, callback) -> None:
        directory = os.path.dirname(path) or "."
        entries = self._dirs.get(directory, [])
        entry = (os.path.basename(path), callback)
        if entry in entries:
            entries.remove(entry)

    def stop(self):
        if self._notifier is not None:
            try:
                self._notifier.connectionLost(None)
            except Exception:
                pass
            self._notifier = None
        self._dirs.clear()


class NullWatcher:
    """No inotify (tests on a Clock, other OSes): the poll does the work."""

    def watch(self, path, callback) -> bool:
        return False

    def unwatch(self, path, callback) -> None:
        pass

    def stop(self):
        pass
