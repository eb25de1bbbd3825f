"""Per-line call state for the status page (SPEC F-304), published on the event bus.

States: IDLE; DIALING (the module is dialling); ALERTING (the remote phone rings);
CONNECTED (talking); ACTIVE (answered, waiting for second-stage digits);
INCOMING (an incoming mobile call being forwarded to VoIP).

Every change is published as topic ``line.call_state`` with fields ``line``,
``state``, ``previous``, ``call_id`` (the SIP Call-ID or None) and ``since`` (the
clock time of the change).  "idle time" (minutes since the last connected call)
comes from ``last_connected_end``.
"""

from __future__ import annotations

import enum

from twisted.logger import Logger

TOPIC = "line.call_state"


class LineState(str, enum.Enum):
    IDLE = "IDLE"
    DIALING = "DIALING"
    ALERTING = "ALERTING"
    CONNECTED = "CONNECTED"
    ACTIVE = "ACTIVE"
    INCOMING = "INCOMING"


class LineStates:
    """The current state of every line; the only writer of ``line.call_state``."""

    log = Logger()

    def __init__(self, events, clock):
        self.events = events
        self.clock = clock
        self._state: dict[int, LineState] = {}
        self._since: dict[int, float] = {}
        self._call: dict[int, str | None] = {}
        self.last_connected_end: dict[int, float] = {}

    def get(self, line: int) -> LineState:
        return self._state.get(line, LineState.IDLE)

    def is_idle(self, line: int) -> bool:
        return self.get(line) is LineState.IDLE

    def set(self, line: int, state: LineState, call_id: str | None = None) -> None:
        previous = self.get(line)
        if previous is state and self._call.get(line) == call_id:
            return
        now = self.clock.seconds()
        if previous is LineState.CONNECTED and state is not LineState.CONNECTED:
            self.last_connected_end[line] = now
        self._state[line] = state
        self._since[line] = now
        self._call[line] = call_id
        self.log.debug("line {line} {previous} -> {state}", line=line,
                       previous=previous.value, state=state.value)
        if self.events is not None:
            self.events.publish(TOPIC, line=line, state=state.value, previous=previous.value,
                                call_id=call_id, since=now)

    def snapshot(self) -> dict[int, dict]:
        """For the status page: line -> {state, since, call_id, idle_minutes}."""
        now = self.clock.seconds()
        out = {}
        for line in sorted(set(self._state) | set(self.last_connected_end)):
            end = self.last_connected_end.get(line)
            out[line] = {"state": self.get(line).value, "since": self._since.get(line),
                         "call_id": self._call.get(line),
                         "idle_minutes": None if end is None else int((now - end) // 60)}
        return out
