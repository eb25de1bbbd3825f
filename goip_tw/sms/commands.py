"""SMS commands to the gateway (F-1501, manual Appendix A).

``###INFO###`` replies with the gateway's IP addresses (can be disabled, F-490);
``RESET <admin password>`` factory-resets and ``REBOOT <admin password>`` restarts.
Matching is case-insensitive on ASCII letters only (``re.ASCII``), so Unicode
look-alikes (fullwidth letters, the Kelvin sign, Cyrillic) never match. A command is
the whole message: the keyword, blanks, one password token; "reset my router please"
is an ordinary SMS and is forwarded as usual.

A message that *is* a command is never forwarded and is stored redacted
(``RESET ********``); the password is not logged. A wrong password does nothing
visible: no reply, only a log line (goip_tw's auth-failure format) without the
password. After ``max_failures`` wrong passwords a sender is locked out for
``lockout`` seconds (later attempts, even right ones, are ignored), and after
``global_max_failures`` within that window RESET/REBOOT are refused for everyone,
since a sender number is easy to spoof.

Exactly once: the command is recognised inside the store transaction that stores the
message (goip_tw/sms/inbound.py); a duplicate delivery of the same SMS is dropped
there, so the action runs once. It runs after the commit, on the reactor.
"""

from __future__ import annotations

import hmac
import re
from typing import Callable

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.sms.inbound import IInboundInterceptor, Interception, ReceivedSms

log = Logger()

_INFO = re.compile(r"###INFO###", re.ASCII | re.IGNORECASE)
_AUTH = re.compile(r"(RESET|REBOOT)[ \t]+(\S+)", re.ASCII | re.IGNORECASE)


@attrs.frozen
class Command:
    name: str  # "info", "reset", "reboot"
    password: str = attrs.field(default="", repr=False)

    @property
    def redacted(self) -> str:
        return "###INFO###" if self.name == "info" else f"{self.name.upper()} ********"


def parse(text: str, info_enabled: bool = True) -> Command | None:
    """The command in ``text`` or None. Pure; safe on any input."""
    body = text.strip(" \t\r\n")
    if info_enabled and _INFO.fullmatch(body):
        return Command("info")
    m = _AUTH.fullmatch(body)
    if m:
        return Command(m.group(1).lower(), m.group(2))
    return None


@attrs.frozen
class CommandSettings:
    info_enabled: bool = True
    info_interval: float = 300.0  # per sender, between two ###INFO### replies
    info_max_per_hour: int = 20  # for all senders together
    max_failures: int = 3
    lockout: float = 3600.0
    global_max_failures: int = 10


@implementer(IInboundInterceptor)
class SmsCommands:
    """The F-1501 interceptor.

    Injected callables (the gateway provides them):
    ``check_password(pw) -> bool`` (admin password, constant-time compare inside);
    ``factory_reset()`` and ``restart()`` (gateway.factory_reset / gateway.restart);
    ``info_text() -> str``; ``reply(line, number, text) -> Deferred`` (the outgoing
    queue).
    """

    def __init__(self, clock, *, check_password: Callable[[str], bool],
                 factory_reset: Callable[[], object], restart: Callable[[], object],
                 info_text: Callable[[], str],
                 reply: Callable[[int, str, str], defer.Deferred],
                 settings: CommandSettings | None = None):
        self.clock = clock
        self.check_password = check_password
        self.factory_reset = factory_reset
        self.restart = restart
        self.info_text = info_text
        self.reply = reply
        self.settings = settings or CommandSettings()
        self._failures: dict[str, list[float]] = {}
        self._locked: dict[str, float] = {}
        self._global: list[float] = []
        self._info_last: dict[str, float] = {}
        self._info_window: list[float] = []

    # -- IInboundInterceptor (writer thread: pure) ------------------------------------

    def intercept(self, msg: ReceivedSms) -> Interception | None:
        cmd = parse(msg.text, self.settings.info_enabled)
        if cmd is None:
            return None
        return Interception(kind=f"command:{cmd.name}", history_text=cmd.redacted,
                            action=lambda m: self.run(cmd, m))

    # -- after the commit (reactor thread) ------------------------------------------

    def run(self, cmd: Command, msg: ReceivedSms):
        if cmd.name == "info":
            return self._info(msg)
        return self._privileged(cmd, msg)

    def _prune(self, stamps: list[float], now: float, window: float) -> list[float]:
        return [t for t in stamps if now - t < window]

    def _info(self, msg: ReceivedSms):
        now = self.clock.seconds()
        s = self.settings
        last = self._info_last.get(msg.sender)
        self._info_window = self._prune(self._info_window, now, 3600.0)
        if last is not None and now - last < s.info_interval:
            log.info("sms command info from {sender} on line {line}: rate-limited (sender)",
                     sender=msg.sender, line=msg.line)
            return None
        if len(self._info_window) >= s.info_max_per_hour:
            log.warn("sms command info from {sender} on line {line}: rate-limited (global)",
                     sender=msg.sender, line=msg.line)
            return None
        self._info_last[msg.sender] = now
        self._info_window.append(now)
        log.info("sms command info from {sender} on line {line}: replying",
                 sender=msg.sender, line=msg.line)
        return self.reply(msg.line, msg.sender, self.info_text())

    def locked_out(self, sender: str) -> bool:
        now = self.clock.seconds()
        until = self._locked.get(sender)
        if until is not None and now >= until:
            del self._locked[sender]
            self._failures.pop(sender, None)
            until = None
        self._global = self._prune(self._global, now, self.settings.lockout)
        return until is not None or len(self._global) >= self.settings.global_max_failures

    def _privileged(self, cmd: Command, msg: ReceivedSms):
        if self.locked_out(msg.sender):
            log.warn("sms command {command} from {sender} on line {line} ignored: locked out",
                     command=cmd.name, sender=msg.sender, line=msg.line)
            return None
        try:
            ok = bool(self.check_password(cmd.password))
        except Exception:
            log.failure("sms command {command}: password check failed", command=cmd.name)
            ok = False
        if not ok:
            self._failed(cmd, msg)
            return None
        self._failures.pop(msg.sender, None)
        log.info("sms command {command} from {sender} on line {line}: accepted",
                 command=cmd.name, sender=msg.sender, line=msg.line)
        hook = self.factory_reset if cmd.name == "reset" else self.restart
        # Let the store commit's callback chain finish before tearing things down.
        self.clock.callLater(0, hook)
        return None

    def _failed(self, cmd: Command, msg: ReceivedSms) -> None:
        now = self.clock.seconds()
        s = self.settings
        stamps = self._prune(self._failures.get(msg.sender, []), now, s.lockout) + [now]
        self._failures[msg.sender] = stamps
        self._global.append(now)
        log.warn("auth failure: service=sms-command user={command} source={sender} "
                 "line={line}", command=cmd.name, sender=msg.sender, line=msg.line)
        if len(stamps) >= s.max_failures:
            self._locked[msg.sender] = now + s.lockout
            log.warn("sms command sender {sender} locked out for {seconds:.0f} s",
                     sender=msg.sender, seconds=s.lockout)


def password_checker(expected: str) -> Callable[[str], bool]:
    """Constant-time comparison with the configured admin password."""
    want = expected.encode("utf-8")

    def check(given: str) -> bool:
        return bool(want) and hmac.compare_digest(want, given.encode("utf-8", "surrogatepass"))

    return check
