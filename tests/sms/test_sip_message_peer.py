"""F-1801 over real SIP on 127.0.0.1: a MESSAGE from an admitted peer (trunk address,
F-425) is answered 202 once stored, sent by a line, and the RELAY OK result report
MESSAGE arrives at the sender; a stranger's MESSAGE never reaches the queue."""

import os

import pytest_twisted
from twisted.internet import defer, protocol, reactor, task

from goip_tw.config.sections.voip import VoipConfig
from goip_tw.sip.service import SipService
from goip_tw.sms.queue import QueueSettings, SmsQueue
from goip_tw.sms.sip_message import SipMessageRelay
from tests.sip.test_peers_kamailio import sip_config
from tests.sms.fakes import FakeLine


class Peer(protocol.DatagramProtocol):
    """A tiny SIP UA: sends one MESSAGE, answers 200 to requests it receives."""

    def __init__(self):
        self.got: list[bytes] = []

    def datagramReceived(self, data, addr):
        self.got.append(data)
        if not data.startswith(b"SIP/2.0"):
            head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
            keep = [h for h in head[1:] if h.split(b":")[0].lower() in
                    (b"via", b"from", b"to", b"call-id", b"cseq")]
            resp = b"\r\n".join([b"SIP/2.0 200 OK"] + keep + [b"Content-Length: 0", b"", b""])
            self.transport.write(resp, addr)

    def send(self, gw_port, call_id, body):
        port = self.transport.getHost().port
        text = (f"MESSAGE sip:gw@127.0.0.1:{gw_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{os.urandom(6).hex()};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=a1\r\n"
                f"To: <sip:gw@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\n"
                f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n")
        self.transport.write(text.encode() + body, ("127.0.0.1", gw_port))


@defer.inlineCallbacks
def wait_for(pred, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        yield task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("timed out")


@pytest_twisted.inlineCallbacks
def test_admitted_message_relay_ok_and_stranger_refused(store):
    net = []
    queue = SmsQueue(store, reactor, settings=QueueSettings(sweep_interval=3600))
    queue.add_line(FakeLine(1, net))
    yield queue.startService()
    trusted = SipService(reactor, sip_config(), VoipConfig(mode="trunk",
                                                           trunk_gateway1="127.0.0.1"), 1)
    stranger = SipService(reactor, sip_config(), VoipConfig(mode="trunk",
                                                            trunk_gateway1="10.9.9.1"), 1)
    relays = [SipMessageRelay(queue, svc) for svc in (trusted, stranger)]
    for svc, relay in zip((trusted, stranger), relays):
        svc.set_message_handler(relay)
        svc.startService()
    peer = Peer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    try:
        peer.send(trusted.port, "relay-1@127.0.0.1", "+4915550001\nHallo über SIP".encode())
        yield wait_for(lambda: any(g.startswith(b"SIP/2.0 202") for g in peer.got))
        yield wait_for(lambda: any(g.startswith(b"MESSAGE ") for g in peer.got))
        report = next(g for g in peer.got if g.startswith(b"MESSAGE "))
        assert report.endswith(b"\r\n\r\nSMS(callid:relay-1) RELAY OK")
        assert [(n[1], n[2]) for n in net] == [("+4915550001", "Hallo über SIP")]
        peer.got.clear()
        peer.send(stranger.port, "relay-2@127.0.0.1", b"+4915550002\nspam")
        yield wait_for(lambda: any(g.startswith(b"SIP/2.0 4") for g in peer.got))
        yield task.deferLater(reactor, 0.3, lambda: None)
        assert len(net) == 1 and not any(g.startswith(b"MESSAGE") for g in peer.got)
    finally:
        yield port.stopListening()
        for relay in relays:
            relay.close()
        for svc in (trusted, stranger):
            yield svc.stopService()
        queue.stopService()
