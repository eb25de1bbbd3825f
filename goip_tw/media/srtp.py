"""SRTP with SDES keys (RFC 4568) through pylibsrtp (libsrtp2), for F-208.

Only ``AES_CM_128_HMAC_SHA1_80`` (RFC 4568 section 6.2.1; the suite every SDES
peer supports) is offered and accepted.  The SDP side writes
``a=crypto:<tag> AES_CM_128_HMAC_SHA1_80 inline:<base64 key||salt>``; each
direction has its own master key: ours protects what we send, the peer's
unprotects what we receive.
"""

from __future__ import annotations

import base64
import binascii
import os

import attrs

SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_SALT_LEN = 30  # 16-byte master key + 14-byte master salt


class SrtpError(ValueError):
    """A bad crypto attribute or an SRTP failure; the message names the field."""


@attrs.frozen
class CryptoAttribute:
    tag: int
    suite: str
    key: bytes = attrs.field(repr=False)

    def to_sdp(self) -> str:
        """The attribute value (after ``a=crypto:``)."""
        return f"{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"


def new_crypto(tag: int = 1) -> CryptoAttribute:
    return CryptoAttribute(tag, SUITE, os.urandom(KEY_SALT_LEN))


def parse_crypto(value: str) -> CryptoAttribute:
    """Parse an ``a=crypto:`` value (with or without the ``a=crypto:`` prefix)."""
    text = value.strip()
    if text.startswith("a=crypto:"):
        text = text[len("a=crypto:"):]
    parts = text.split()
    if len(parts) < 3:
        raise SrtpError("sdp crypto: expected '<tag> <suite> inline:<key>'")
    try:
        tag = int(parts[0])
    except ValueError:
        raise SrtpError(f"sdp crypto: tag {parts[0]!r} is not a number") from None
    if not 0 <= tag <= 999999999:
        raise SrtpError(f"sdp crypto: tag {tag} out of range")
    suite = parts[1]
    if suite != SUITE:
        raise SrtpError(f"sdp crypto: suite {suite} not supported (only {SUITE})")
    params = parts[2]
    if not params.startswith("inline:"):
        raise SrtpError("sdp crypto: key method must be inline")
    if ";" in params:
        raise SrtpError("sdp crypto: several master keys are not supported")
    b64 = params[len("inline:"):].split("|")[0]
    try:
        key = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise SrtpError("sdp crypto: inline key is not base64") from None
    if len(key) != KEY_SALT_LEN:
        raise SrtpError(f"sdp crypto: inline key is {len(key)} bytes, need {KEY_SALT_LEN}")
    return CryptoAttribute(tag, suite, key)


def choose(offers: list[str]) -> CryptoAttribute:
    """The first acceptable offered attribute (answerer side); SrtpError if none."""
    errors = []
    for value in offers:
        try:
            return parse_crypto(value)
        except SrtpError as e:
            errors.append(str(e))
    raise SrtpError("; ".join(errors) or "sdp crypto: no crypto attribute offered")


class SrtpContext:
    """Protects outgoing and unprotects incoming RTP/RTCP of one stream."""

    def __init__(self, local: CryptoAttribute, remote: CryptoAttribute):
        import pylibsrtp

        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        self._tx = pylibsrtp.Session(pylibsrtp.Policy(
            key=local.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self._rx = pylibsrtp.Session(pylibsrtp.Policy(
            key=remote.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile))

    def protect(self, packet: bytes) -> bytes:
        return self._tx.protect(packet)

    def unprotect(self, packet: bytes) -> bytes:
        return self._rx.unprotect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._tx.protect_rtcp(packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return self._rx.unprotect_rtcp(packet)
