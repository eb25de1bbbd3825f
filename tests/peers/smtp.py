"""An SMTP sink on 127.0.0.1 for forwarding tests (aiosmtpd).

It speaks ESMTP with AUTH PLAIN/LOGIN and either STARTTLS, implicit TLS or plain
text, writes every accepted message to an mbox and keeps the parsed messages for
assertions. aiosmtpd runs its own asyncio loop in a thread, so the sink works next
to the Twisted reactor the test drives.

Usage::

    sink = SmtpSink(tmp_path, mode="starttls", username="u", password="p")
    sink.start()
    ...  # sink.port, sink.ca_path (PEM to trust), sink.messages
    sink.stop()
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import mailbox
import socket
import ssl
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.peers.peerutil import free_port


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for localhost/127.0.0.1; returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "smtp-cert.pem"
    key_path = directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self._sink = sink

    async def handle_DATA(self, server, session, envelope):
        self._sink._accept(envelope)
        return "250 OK stored"


class SmtpSink:
    """mode: "starttls" (plain connect, STARTTLS required before AUTH), "tls"
    (implicit TLS, as on port 465) or "plain" (no TLS, AUTH allowed in clear)."""

    def __init__(
        self,
        directory: Path,
        mode: str = "starttls",
        username: str = "gw",
        password: str = "secret",
        fail_first: int = 0,
    ):
        self.directory = Path(directory)
        self.mode = mode
        self.username = username
        self.password = password
        self.fail_first = fail_first
        # aiosmtpd needs a number: one below the kernel's ephemeral range, so no
        # bind(0) elsewhere takes it before start() binds it
        self.port = free_port(socket.SOCK_STREAM)
        self.mbox_path = self.directory / "sink.mbox"
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.ca_path, self._key_path = make_self_signed(self.directory)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            if (
                auth_data.login.decode() == self.username
                and auth_data.password.decode() == self.password
            ):
                return AuthResult(success=True)
        with self._lock:
            self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    def _accept(self, envelope) -> None:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.messages.append(msg)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            box = mailbox.mbox(str(self.mbox_path))
            try:
                box.add(mailbox.mboxMessage(raw))
                box.flush()
            finally:
                box.close()

    def start(self) -> None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(str(self.ca_path), str(self._key_path))
        kwargs = dict(
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_required=True,
            # aiosmtpd does not see implicit TLS as TLS for this check.
            auth_require_tls=self.mode == "starttls",
            decode_data=False,
        )
        if self.mode == "starttls":
            kwargs.update(tls_context=server_ctx, require_starttls=True)
        elif self.mode == "tls":
            kwargs.update(ssl_context=server_ctx)
        handler = _Handler(self)
        if self.fail_first:
            handler = _FailingHandler(self, self.fail_first)
        self._controller = Controller(handler, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Block (a worker thread only) until *count* messages arrived."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return
            time.sleep(0.02)
        raise AssertionError(f"{len(self.messages)} messages, wanted {count}")


class _FailingHandler(_Handler):
    """Rejects the first *n* messages with a temporary error (retry tests)."""

    def __init__(self, sink: SmtpSink, n: int):
        super().__init__(sink)
        self.left = n

    async def handle_DATA(self, server, session, envelope):
        if self.left > 0:
            self.left -= 1
            return "451 try again later"
        return await super().handle_DATA(server, session, envelope)
