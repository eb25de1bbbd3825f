"""E-mail for received SMS (F-498): build a safe message, send it with twisted.mail.

The hardware speaks plain SMTP only; we send with ESMTP AUTH over STARTTLS (RFC 3207)
or implicit TLS (RFC 8314, port 465), and plain text only when configured so.

Header safety: an SMS sender or text is attacker-controlled. Nothing from an SMS goes
into a header except the sender number and line, and those pass through
:func:`header_safe` (CR, LF and every other control character removed, length
capped) before the ``email`` package folds them (RFC 5322 §2.2). The text itself only
ever goes into the UTF-8 body, base64 encoded (RFC 2045), so a CR/LF or a lone "."
inside it can neither start a header nor end the SMTP DATA phase.
"""

from __future__ import annotations

import email.policy
import email.utils
import io
import unicodedata
from email.message import EmailMessage
from typing import Sequence

import attrs
from twisted.internet import defer
from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.mail.smtp import ESMTPSenderFactory

log = Logger()

SECURITY_MODES = ("starttls", "tls", "none")


def header_safe(value: str, limit: int = 80) -> str:
    """Drop control characters (Unicode category C*, which includes CR/LF, NUL,
    U+2028/2029 separators) so the value can never break out of one header line."""
    cleaned = "".join(
        ch if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " " else " "
        for ch in value
    )
    return " ".join(cleaned.split())[:limit]


@attrs.frozen
class SmtpSettings:
    """Where and how to send. ``security`` is one of :data:`SECURITY_MODES`;
    ``ca_file`` (PEM) replaces the system trust store, e.g. for a private relay."""

    host: str
    port: int
    from_addr: str
    to_addrs: tuple[str, ...]
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    security: str = attrs.field(
        default="starttls", validator=attrs.validators.in_(SECURITY_MODES)
    )
    ca_file: str = ""
    tls_hostname: str = ""
    timeout: float = 30.0


def build_message(
    *,
    from_addr: str,
    to_addrs: Sequence[str],
    sms_sender: str,
    line: int,
    text: str,
    received_at: str,
    domain: str = "goip-tw.invalid",
) -> bytes:
    """The RFC 5322 message for one received SMS, UTF-8 body. Lines end in LF:
    twisted.mail's SMTPClient turns LF into CRLF and dot-stuffs while sending."""
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = header_safe(from_addr, 254)
    msg["To"] = ", ".join(header_safe(a, 254) for a in to_addrs)
    msg["Subject"] = f"SMS from {header_safe(sms_sender, 40)} (L{int(line)})"
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=domain)
    msg["X-GoIP-Line"] = str(int(line))
    msg["X-GoIP-Sender"] = header_safe(sms_sender, 40)
    body = (
        f"From: {header_safe(sms_sender, 40)}\n"
        f"Line: L{int(line)}\n"
        f"Received: {header_safe(received_at, 40)}\n\n"
        f"{text}\n"
    )
    msg.set_content(body, charset="utf-8", cte="base64")
    return msg.as_bytes()


def _tls_options(settings: SmtpSettings):
    hostname = settings.tls_hostname or settings.host
    if settings.ca_file:
        with open(settings.ca_file, "rb") as f:
            trust = Certificate.loadPEM(f.read())
    else:
        trust = platformTrust()
    return optionsForClientTLS(hostname, trustRoot=trust)


def send_message(reactor, settings: SmtpSettings, message: bytes) -> defer.Deferred:
    """Send *message* once; the Deferred fires when the relay accepted it (250) and
    fails on any error. Retrying is the caller's business (the forward queue).
    Cancelling it (the forwarder's stop) closes the connection at once, so no SMTP
    session or timer outlives the service."""
    inner: defer.Deferred = defer.Deferred()
    tls = settings.security != "none"
    try:
        context = _tls_options(settings) if tls else None
    except Exception as e:  # unreadable CA file etc.
        return defer.fail(e)
    factory = ESMTPSenderFactory(
        settings.username.encode("utf-8") if settings.username else None,
        settings.password.encode("utf-8") if settings.password else None,
        settings.from_addr,
        list(settings.to_addrs),
        io.BytesIO(message),
        inner,
        retries=0,
        timeout=settings.timeout,
        contextFactory=context,
        requireAuthentication=bool(settings.username),
        requireTransportSecurity=tls,
    )
    if settings.security == "tls":
        connector = reactor.connectSSL(
            settings.host, settings.port, factory, context, timeout=settings.timeout
        )
    else:
        connector = reactor.connectTCP(settings.host, settings.port, factory,
                                       timeout=settings.timeout)
    result: defer.Deferred = defer.Deferred(lambda _: connector.disconnect())

    def relay(outcome):
        # After a cancel the factory still reports the closed connection: drop it.
        if not result.called:
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

    inner.addBoth(relay)
    return result
