"""sipsak (Debian) against a tiny responder built on our transport and transaction
layers: plain OPTIONS, OPTIONS answered through a digest challenge, and a stack
that still answers after sipsak's random-garbage mode."""

from __future__ import annotations

import shutil

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from goip_tw.config.sections.sip import SipConfig
from goip_tw.sip.auth import DigestServer
from goip_tw.sip.dialog import check_request
from goip_tw.sip.transaction import TransactionLayer
from goip_tw.sip.transport import TransportLayer

SIPSAK = shutil.which("sipsak")
pytestmark = pytest.mark.skipif(SIPSAK is None, reason="sipsak not installed "
                                "(apt-get install sipsak)")


def responder(password: str | None = None, algorithms=("MD5",)):
    cfg = SipConfig(bind_address="127.0.0.1", local_port=0, tcp=False, dscp=0,
                    random_port_range="30000-60000")
    transport = TransportLayer(reactor, cfg)
    transport.start()
    layer = TransactionLayer(transport, reactor)
    digest = DigestServer(reactor, realm="goip.test", algorithms=algorithms)
    seen = []

    def on_request(txn):
        req = txn.request
        seen.append(req.method)
        error = check_request(req)
        if error is not None:
            txn.respond(error)
            return
        if password is not None:
            outcome, _ = digest.verify(req, txn.source, {"sak": password}.get)
            if outcome != "ok":
                txn.respond(digest.challenge(req, source=txn.source))
                return
        resp = req.make_response(200, to_tag=layer.new_tag())
        resp.headers.add("allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE")
        txn.respond(resp)

    layer.request_received = on_request
    return transport, layer, seen


def sipsak(*args):
    # -S: receive on the port we send from (PEERS.md: replies after a challenge)
    return getProcessOutputAndValue(SIPSAK, ("-S", "-vv") + args, reactor=reactor)


@pytest_twisted.inlineCallbacks
def test_sipsak_options_gets_200():
    transport, layer, seen = responder()
    try:
        port = transport.ports["udp"]
        out, err, code = yield sipsak("-s", f"sip:gw@127.0.0.1:{port}")
        assert code == 0, out.decode() + err.decode()
        assert b"200 OK" in out
        assert seen == ["OPTIONS"]
    finally:
        layer.stop()
        yield transport.stop()


@pytest_twisted.inlineCallbacks
def test_sipsak_answers_our_digest_challenge():
    transport, layer, seen = responder(password="pw1234")
    try:
        port = transport.ports["udp"]
        out, err, code = yield sipsak("-s", f"sip:gw@127.0.0.1:{port}", "-u", "sak",
                                      "-a", "pw1234")
        assert code == 0, out.decode() + err.decode()
        assert seen == ["OPTIONS", "OPTIONS"]
        out, err, code = yield sipsak("-s", f"sip:gw@127.0.0.1:{port}", "-u", "sak",
                                      "-a", "wrong")
        assert code != 0
    finally:
        layer.stop()
        yield transport.stop()


@pytest_twisted.inlineCallbacks
def test_stack_answers_after_sipsak_random_mode():
    transport, layer, seen = responder()
    try:
        port = transport.ports["udp"]
        # -R trashes random characters of a valid request, many times over
        yield sipsak("-R", "-t", "20", "-s", f"sip:gw@127.0.0.1:{port}")
        out, err, code = yield sipsak("-s", f"sip:gw@127.0.0.1:{port}")
        assert code == 0 and b"200 OK" in out
    finally:
        layer.stop()
        yield transport.stop()
