"""SMPP over TLS (optional listener): smpplib with an ssl context binds and submits."""

import datetime
import ssl

import pytest_twisted
import smpplib.client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, reactor, threads

from goip_tw.config.sections.smpp import SmppConfig
from goip_tw.smpp.protocol import Account
from goip_tw.smpp.service import SmppService
from tests.peers.peerutil import free_port


def self_signed(path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))


class Backend:
    system_id, password = "1", "pw"

    def __init__(self):
        self.sessions = []
        self.submits = []

    def bind(self, system_id, password, mode, host):
        return defer.succeed(Account(system_id, mode))

    def submit(self, account, message):
        self.submits.append(message.text)
        return defer.succeed("42")

    def session_bound(self, s):
        self.sessions.append(s)

    def session_lost(self, s):
        self.sessions.remove(s)

    def close(self):
        pass

    def start(self):
        return defer.succeed(None)


@pytest_twisted.inlineCallbacks
def test_bind_and_submit_over_tls(tmp_path):
    pem = tmp_path / "smpp.pem"
    self_signed(pem)
    tls_port = free_port()
    cfg = SmppConfig(port=0, interface="127.0.0.1", tls_port=tls_port, tls_cert=str(pem))
    backend = Backend()
    svc = SmppService(backend, reactor, cfg)
    yield svc.startService()
    try:
        def esme():
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = smpplib.client.Client("127.0.0.1", tls_port, timeout=10, ssl_context=ctx,
                                      allow_unknown_opt_params=True)
            c.connect()
            c.bind_transmitter(system_id="1", password="pw")
            c.send_message(source_addr="1", destination_addr="+4915550001",
                           short_message=b"over tls")
            resp = c.read_pdu()
            c.unbind()
            c.disconnect()
            return resp
        resp = yield threads.deferToThread(esme)
        assert resp.command == "submit_sm_resp" and resp.message_id == b"42"
        assert backend.submits == ["over tls"]
    finally:
        yield svc.stopService()
