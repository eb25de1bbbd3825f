"""Own-number discovery for SIMs whose number is unknown (F-510).

Three methods, as the manual lists them:

1. USSD: send a configured code (e.g. ``*101#``) and take the digits after a
   configured phrase in the reply ("Your number is").
2. SMS query: send a configured text to the operator's service number and take the
   digits after a phrase in the reply that comes from a configured sender.
3. Token: the line with the unknown SIM sends a generated SMS to a line whose number
   is known; the receiving side learns the sender's number from the SMS itself. The
   token carries the sending SIM's ICCID encrypted and authenticated with
   AES-256-GCM (NIST SP 800-38D) under a key derived from the gateway secret, plus
   its creation time: a forged or altered token fails the tag check, an old one
   (older than ``token_ttl``) is refused, and the ICCID never travels in clear.

Learned numbers go to ``sim_own_number`` keyed by ICCID (the number belongs to the
SIM, not to the line or slot), written inside the transaction that stores the
answering SMS (the ``record`` hook of goip_tw/sms/inbound.py), so they are durable
at once. Replies and tokens are claimed: never forwarded, never shown to observers.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
from typing import Callable

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.sms.inbound import IInboundInterceptor, Interception, ReceivedSms

log = Logger()

TOKEN_PREFIX = "#SIMID#"
_AAD = b"goip-tw own-number token v1"
_ICCID = re.compile(r"[0-9A-Fa-f]{10,22}")
_NUMBER = re.compile(r"\+?[0-9][0-9 \-]{3,30}")


class DiscoveryFailed(Exception):
    """Discovery ended without a number; the text says which step and why."""


def extract_number(text: str, phrase: str) -> str | None:
    """The digits (with a leading +) right after ``phrase`` (case-insensitive)."""
    if not phrase:
        return None
    at = text.casefold().find(phrase.casefold())
    if at < 0:
        return None
    m = _NUMBER.search(text, at + len(phrase))
    if m is None:
        return None
    raw = m.group(0)
    number = ("+" if raw.startswith("+") else "") + re.sub(r"[^0-9]", "", raw)
    digits = number.lstrip("+")
    return number if 4 <= len(digits) <= 20 else None


def _digits(number: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", number)


class TokenCodec:
    """Makes and opens ``#SIMID#<base64url(nonce | ciphertext | tag)>`` texts."""

    def __init__(self, secret: bytes):
        if not secret:
            raise ValueError("secret: own-number tokens need a non-empty gateway secret")
        self._aead = AESGCM(hashlib.sha256(b"goip-tw own-number key|" + secret).digest())

    def make(self, iccid: str, now: float) -> str:
        if not _ICCID.fullmatch(iccid):
            raise ValueError(f"iccid: {iccid!r} is not an ICCID")
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, f"{iccid}|{int(now)}".encode("ascii"), _AAD)
        return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, text: str, now: float, ttl: float) -> str | None:
        """The ICCID in a valid, fresh token; None for anything else."""
        body = text.strip()
        if not body.startswith(TOKEN_PREFIX):
            return None
        b64 = body[len(TOKEN_PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
            plain = self._aead.decrypt(raw[:12], raw[12:], _AAD).decode("ascii")
            iccid, stamp = plain.split("|")
            age = now - int(stamp)
        except (InvalidTag, ValueError, UnicodeError):
            return None
        if not _ICCID.fullmatch(iccid) or not -300 <= age <= ttl:
            return None
        return iccid


def save_number(conn, iccid: str, number: str, method: str, line: int | None, now: float):
    """Portable upsert of a learned number (UPDATE, then INSERT when absent)."""
    cur = conn.execute("UPDATE sim_own_number SET number = ?, method = ?, line = ?, "
                       "learned_at = ? WHERE iccid = ?", (number, method, line, now, iccid))
    if cur.rowcount == 0:
        conn.execute("INSERT INTO sim_own_number (iccid, number, method, line, learned_at) "
                     "VALUES (?, ?, ?, ?, ?)", (iccid, number, method, line, now))


@attrs.frozen
class _Expect:
    id: int
    kind: str  # "sms" | "token"
    iccid: str
    line: int = 0
    reply_from: str = ""
    phrase: str = ""


@implementer(IInboundInterceptor)
class OwnNumbers:
    """F-510 discovery and the interceptor that learns from replies and tokens.

    ``send_sms(line, number, text) -> Deferred`` submits through the outgoing queue;
    ``ussd`` is a goip_tw.sms.ussd.UssdSessions.
    """

    def __init__(self, store, clock, *, secret: bytes, ussd=None,
                 send_sms: Callable[[int, str, str], defer.Deferred] | None = None,
                 token_ttl: float = 86400.0, timeout: float = 600.0):
        self.store = store
        self.clock = clock
        self.codec = TokenCodec(secret)
        self.ussd = ussd
        self.send_sms = send_sms
        self.token_ttl = token_ttl
        self.timeout = timeout
        self._expect: tuple[_Expect, ...] = ()  # replaced, never mutated: read by the writer thread
        self._waiting: dict[int, tuple[defer.Deferred, object]] = {}
        self._ids = itertools.count(1)

    # -- queries --------------------------------------------------------------------

    def number_for(self, iccid: str) -> defer.Deferred:
        d = self.store.query("SELECT number FROM sim_own_number WHERE iccid = ?", (iccid,))
        return d.addCallback(lambda rows: rows[0][0] if rows else None)

    def known(self) -> defer.Deferred:
        d = self.store.query("SELECT iccid, number, method, line, learned_at FROM "
                             "sim_own_number ORDER BY iccid")
        return d.addCallback(lambda rows: [dict(r) for r in rows])

    # -- method 1: USSD -------------------------------------------------------------

    @defer.inlineCallbacks
    def discover_by_ussd(self, line: int, iccid: str, code: str, phrase: str):
        if self.ussd is None:
            raise DiscoveryFailed("ussd: no USSD service")
        results = yield self.ussd.send([line], code)
        result = results[line]
        if result.session_open:
            yield self.ussd.cancel(line)
        if result.status not in ("open", "done", "ended"):
            raise DiscoveryFailed(f"ussd: {result.status} {result.error}".strip())
        number = extract_number(result.text, phrase)
        if number is None:
            raise DiscoveryFailed(f"ussd: phrase {phrase!r} with a number not in the reply")
        yield self.store.write(save_number, iccid, number, "ussd", line, self.clock.seconds())
        log.info("own number of SIM {iccid} on line {line} learned by USSD: {number}",
                 iccid=iccid, line=line, number=number)
        return number

    # -- method 2: SMS query --------------------------------------------------------

    def discover_by_sms(self, line: int, iccid: str, service_number: str, query: str,
                        reply_from: str, phrase: str) -> defer.Deferred:
        expect = _Expect(next(self._ids), "sms", iccid, line, reply_from, phrase)
        return self._send_and_wait(expect, line, service_number, query)

    # -- method 3: token to a known line --------------------------------------------

    def discover_by_token(self, line: int, iccid: str, target_number: str) -> defer.Deferred:
        try:
            token = self.codec.make(iccid, self.clock.seconds())
        except ValueError as e:
            return defer.fail(DiscoveryFailed(str(e)))
        expect = _Expect(next(self._ids), "token", iccid)
        return self._send_and_wait(expect, line, target_number, token)

    def _send_and_wait(self, expect: _Expect, line: int, number: str, text: str):
        if self.send_sms is None:
            return defer.fail(DiscoveryFailed("sms: no outgoing queue"))
        waiter: defer.Deferred = defer.Deferred()
        timer = self.clock.callLater(self.timeout, self._give_up, expect.id)
        self._waiting[expect.id] = (waiter, timer)
        self._expect = self._expect + (expect,)
        sent = defer.maybeDeferred(self.send_sms, line, number, text)
        sent.addErrback(lambda f: self._finish(
            expect.id, DiscoveryFailed(f"sms: sending failed: {f.getErrorMessage()}")))
        return waiter

    def _give_up(self, expect_id: int) -> None:
        self._finish(expect_id, DiscoveryFailed("timeout: no answer"), from_timer=True)

    def _finish(self, expect_id: int, result, from_timer: bool = False) -> None:
        self._expect = tuple(e for e in self._expect if e.id != expect_id)
        entry = self._waiting.pop(expect_id, None)
        if entry is None:
            return
        waiter, timer = entry
        if not from_timer and timer.active():
            timer.cancel()
        if isinstance(result, Exception):
            waiter.errback(result)
        else:
            waiter.callback(result)

    def stop(self) -> None:
        for expect_id in list(self._waiting):
            self._finish(expect_id, DiscoveryFailed("stopped"))

    # -- IInboundInterceptor (writer thread: reads the immutable snapshot only) -----

    def intercept(self, msg: ReceivedSms) -> Interception | None:
        if msg.text.strip().startswith(TOKEN_PREFIX):
            return self._token(msg)
        for e in self._expect:
            if (e.kind == "sms" and e.line == msg.line
                    and _digits(e.reply_from) == _digits(msg.sender)):
                number = extract_number(msg.text, e.phrase)
                if number is not None:
                    return Interception(
                        kind="ownnumber:sms", history_text=msg.text,
                        record=lambda conn, m, e=e, n=number: save_number(
                            conn, e.iccid, n, "sms", e.line, m.received_at),
                        action=lambda m, e=e, n=number: self._learned(e.iccid, n, "sms", m))
        return None

    def _token(self, msg: ReceivedSms) -> Interception:
        iccid = self.codec.open(msg.text, msg.received_at, self.token_ttl)
        if iccid is None or not msg.sender:
            return Interception(kind="ownnumber:invalid", history_text="[own-number token]",
                                action=lambda m: log.warn(
                                    "own-number token from {sender} on line {line} refused "
                                    "(forged, altered or expired)", sender=m.sender,
                                    line=m.line))
        return Interception(
            kind="ownnumber:token", history_text="[own-number token]",
            record=lambda conn, m: save_number(conn, iccid, m.sender, "token", None,
                                               m.received_at),
            action=lambda m: self._learned(iccid, m.sender, "token", m))

    def _learned(self, iccid: str, number: str, method: str, msg: ReceivedSms) -> None:
        log.info("own number of SIM {iccid} learned by {method} on line {line}: {number}",
                 iccid=iccid, method=method, line=msg.line, number=number)
        for e in self._expect:
            if e.iccid == iccid and e.kind == method:
                self._finish(e.id, number)
