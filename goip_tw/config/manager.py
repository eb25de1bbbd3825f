"""The live configuration: current value, reload, and change notification."""

from __future__ import annotations

import os

from twisted.logger import Logger

from goip_tw.config import files, schema


class ConfigManager:
    """Holds the running config; tells listeners what changed.

    Listeners are called as ``listener(old, new, changed_keys)`` after a reload or a
    save, so services can apply what changed without a restart where feasible.
    Command-line overrides stay applied on every reload.
    """

    log = Logger()

    def __init__(self, path: str, overrides: dict | None = None):
        self.path = path
        self.overrides = overrides or {}
        self.config = files.load(path, self.overrides)
        self._listeners = []

    def listen(self, listener) -> None:
        self._listeners.append(listener)

    def reload(self) -> set[str]:
        """Re-read the file (SIGHUP).  A bad file keeps the running config."""
        try:
            new = files.load(self.path, self.overrides)
        except schema.ConfigErrors as e:
            for err in e.errors:
                self.log.error("config reload rejected: {file}: {key}: {reason}",
                               file=err.file, key=err.key, reason=err.reason)
            return set()
        return self._apply(new)

    def update(self, new) -> set[str]:
        """Validate, save atomically and apply a config changed through the UI/API."""
        errors = schema.validate(new, self.path)
        if errors:
            raise schema.ConfigErrors(errors)
        files.save(self.path, new)
        return self._apply(new)

    def save_if_missing(self) -> None:
        """First start: write the defaults (without command-line overrides) for editing."""
        if not os.path.exists(self.path):
            files.save(self.path, files.load(self.path))

    def persist(self, section: str, **values) -> None:
        """Store values the gateway generated itself (e.g. a demo password) in the
        file, keeping command-line overrides out of it."""
        import attrs

        on_disk = files.load(self.path)
        files.save(self.path, attrs.evolve(
            on_disk, **{section: attrs.evolve(getattr(on_disk, section), **values)}))
        self.config = attrs.evolve(
            self.config, **{section: attrs.evolve(getattr(self.config, section), **values)})

    def _apply(self, new) -> set[str]:
        old, self.config = self.config, new
        changed = schema.diff(old, new)
        if changed:
            self.log.info("config changed: {keys}", keys=sorted(changed))
            for listener in list(self._listeners):
                try:
                    listener(old, new, changed)
                except Exception:
                    self.log.failure("config listener failed")
        return changed
