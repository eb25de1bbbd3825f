"""Log observers for twistd: plain text (twistd's default) or JSON lines."""

from __future__ import annotations

import sys

from twisted.logger import jsonFileLogObserver


def json_observer(stream=None):
    """One JSON object per line with every named field (``--log-format json``)."""
    return jsonFileLogObserver(stream or sys.stdout)
