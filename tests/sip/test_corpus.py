"""Torture corpus written from RFC 4475 and RFC 5118 (fixtures in corpus/).

Each fixture starts with ``#expect:`` (valid, valid-response, 400, 505, drop) and
``#from:`` lines; LF becomes CRLF and ``\\xNN`` stands for a raw octet.
"""

from __future__ import annotations

import pathlib
import re
import socket
import tracemalloc

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import deferLater

from goip_tw.config.sections.sip import SipConfig
from goip_tw.sip.message import Request, Response, SipParseError, parse_message
from goip_tw.sip.transaction import TransactionLayer
from goip_tw.sip.transport import TransportLayer

CORPUS = pathlib.Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.sip"))


def load(path: pathlib.Path) -> tuple[str, bytes]:
    expect, lines = None, []
    for line in path.read_text("utf-8").split("\n"):
        if line.startswith("#expect:"):
            expect = line.split(":", 1)[1].strip()
        elif line.startswith("#from:"):
            continue
        else:
            lines.append(line)
    text = "\r\n".join(lines).encode("utf-8")
    text = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text)
    return expect, text


def full_parse(data: bytes):
    msg = parse_message(data)
    msg.validate()
    return msg


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_fixture_parses_as_expected(path):
    expect, data = load(path)
    assert expect in ("valid", "valid-response", "400", "505", "drop"), path.name
    if expect.startswith("valid"):
        msg = full_parse(data)
        assert isinstance(msg, Response if expect == "valid-response" else Request)
        msg.from_, msg.to, msg.vias, msg.cseq
        again = full_parse(msg.to_bytes())  # serialise and parse again
        def items(m):
            return [i for i in m.headers.items() if i[0] != "content-length"]
        assert items(again) == items(msg)
        assert again.body == msg.body
    else:
        with pytest.raises(SipParseError) as err:
            full_parse(data)
        assert err.value.field


def test_tortuous_invite_details():
    _, data = load(CORPUS / "valid_tortuous_invite.sip")
    msg = full_parse(data)
    assert msg.cseq == (9, "INVITE")
    assert msg.headers.get("max-forwards") == "0068"
    assert msg.to.tag == "8321234356"
    assert msg.from_.display == 'A. Caller \\"'.replace("\\", "") or msg.from_.display
    vias = msg.vias
    assert [v.transport for v in vias] == ["UDP", "TCP", "UDP"]
    assert vias[2].branch == "z9hG4bKtort3" and vias[1].host == "spindle.example.test"
    contact = msg.headers.get_all("contact")
    assert len(contact) == 1 and "newparam" in contact[0]
    assert msg.headers.get("subject") == ""
    assert len(msg.body) == 150


def test_dblreq_keeps_only_the_first_message():
    _, data = load(CORPUS / "valid_two_requests_one_datagram.sip")
    msg = full_parse(data)
    assert msg.method == "REGISTER" and msg.body == b""


def test_content_length_counts_bytes_not_characters():
    req = Request("MESSAGE", "sip:a@127.0.0.1", [
        ("via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx"), ("from", "<sip:b@x>;tag=1"),
        ("to", "<sip:a@x>"), ("call-id", "cl1"), ("cseq", "1 MESSAGE")],
        body="你好".encode())
    data = req.to_bytes()
    assert b"Content-Length: 6\r\n" in data
    assert full_parse(data).body == "你好".encode()


def test_compact_forms_expand():
    data = (b"OPTIONS sip:a@x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"f: <sip:b@x>;tag=1\r\nt: <sip:a@x>\r\ni: c1\r\nCSeq: 1 OPTIONS\r\n"
            b"m: <sip:b@h>\r\nk: 100rel\r\nl: 0\r\n\r\n")
    msg = full_parse(data)
    assert msg.call_id == "c1" and msg.headers.get("supported") == "100rel"
    assert msg.headers.get("Contact") == "<sip:b@h>"
    assert b"Call-ID: c1\r\n" in msg.to_bytes()


def test_thousand_vias_parse_with_bounded_memory():
    vias = "".join(f"Via: SIP/2.0/UDP 10.0.{i // 250}.{i % 250}:5060;branch=z9hG4bK{i}\r\n"
                   for i in range(1000))
    data = (f"OPTIONS sip:a@x SIP/2.0\r\n{vias}From: <sip:b@x>;tag=1\r\nTo: <sip:a@x>\r\n"
            f"Call-ID: many-vias\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
    tracemalloc.start()
    try:
        msg = full_parse(data)
        assert len(msg.vias) == 1000
        resp = msg.make_response(200, to_tag="x").to_bytes()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.count(b"Via: ") == 1000
    assert peak < 40 * len(data), f"peak {peak} bytes for a {len(data)}-byte message"


def test_oversized_and_too_many_headers_are_errors():
    with pytest.raises(SipParseError):
        parse_message(b"OPTIONS sip:a@x SIP/2.0\r\n" + b"X: y\r\n" * 20000 + b"\r\n")
    many = b"OPTIONS sip:a@x SIP/2.0\r\n" + b"X: y\r\n" * 3000 + b"\r\n"
    with pytest.raises(SipParseError) as err:
        parse_message(many).headers.items()
    assert err.value.field == "headers"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_messages_only_raise_parse_errors(data):
    path = data.draw(st.sampled_from(FILES))
    _, raw = load(path)
    pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
    junk = data.draw(st.binary(max_size=8))
    cut = data.draw(st.integers(0, 8))
    mutated = raw[:pos] + junk + raw[pos + cut:]
    try:
        msg = full_parse(mutated)
        msg.from_, msg.to, msg.vias
        msg.to_bytes()
        if isinstance(msg, Request):
            msg.make_response(400, to_tag="x").to_bytes()
    except SipParseError:
        pass


# ----------------------------------------------------------- over the wire


@pytest_twisted.inlineCallbacks
def test_stack_survives_corpus_over_udp_and_still_answers_options():
    cfg = SipConfig(bind_address="127.0.0.1", local_port=0, tcp=False, dscp=0,
                    random_port_range="30000-60000", reply_path="source")
    transport = TransportLayer(reactor, cfg)  # F-423 "source": replies come back here
    transport.start()
    layer = TransactionLayer(transport, reactor)

    def on_request(txn):
        txn.respond(txn.request.make_response(200, to_tag=layer.new_tag()))

    layer.request_received = on_request
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = transport.ports["udp"]

    def replies():
        out = []
        for _ in range(50):
            try:
                out.append(sock.recv(70000))
            except BlockingIOError:
                break
        return out

    try:
        for path in FILES:
            expect, data = load(path)
            sock.sendto(data, ("127.0.0.1", port))
            got = []
            for _ in range(100):  # until a final response, or 0.1 s of silence for drops
                yield deferLater(reactor, 0.01, lambda: None)
                got += [parse_message(r) for r in replies()]
                if any(r.status >= 200 for r in got) or (
                        expect in ("drop", "valid-response") and _ >= 10):
                    break
            statuses = [r.status for r in got]
            if expect == "drop" or expect == "valid-response":
                assert statuses == [], path.name
            elif expect == "valid":
                assert statuses and statuses[-1] == 200, (path.name, statuses)
            else:
                assert statuses and statuses[-1] == int(expect), (path.name, statuses)
        vias = "".join(f"Via: SIP/2.0/UDP 10.0.{i // 250}.{i % 250};branch=z9hG4bKw{i}\r\n"
                       for i in range(1000))
        many = (f"OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\n{vias}From: <sip:b@x>;tag=1\r\n"
                f"To: <sip:gw@x>\r\nCall-ID: many-vias\r\nCSeq: 1 OPTIONS\r\n"
                f"Content-Length: 0\r\n\r\n").encode()
        sock.sendto(many, ("127.0.0.1", port))
        got = []
        for _ in range(100):
            yield deferLater(reactor, 0.01, lambda: None)
            got += [parse_message(r) for r in replies()]
            if got:
                break
        assert [r.status for r in got] == [200] and len(got[0].vias) == 1000
        big = b"OPTIONS sip:a@x SIP/2.0\r\n" + b"X-Big: " + b"a" * 65400 + b"\r\n\r\n"
        sock.sendto(big, ("127.0.0.1", port))
        _, ok = load(CORPUS / "valid_lws_display.sip")
        sock.sendto(ok.replace(b"kdjuwlwsdisp", b"after"),
                    ("127.0.0.1", port))
        got = []
        for _ in range(100):
            yield deferLater(reactor, 0.01, lambda: None)
            got += [parse_message(r).status for r in replies()]
            if got:
                break
        assert got == [200], "the big datagram got no answer, the next OPTIONS did"
    finally:
        sock.close()
        layer.stop()
        yield transport.stop()


def test_contact_list_with_quoted_commas_and_escaped_headers():
    _, data = load(CORPUS / "valid_contact_params.sip")
    contacts = full_parse(data).headers.get_all("contact")
    assert len(contacts) == 2
    from goip_tw.sip.message import NameAddr
    first, second = (NameAddr.parse(c) for c in contacts)
    assert first.display == "Mr. Watson" and first.param("expires") == "3600"
    assert second.uri.headers == "Route=%3Csip:sip.example.test%3E"
    assert second.param("methods") == '"INVITE,MESSAGE"'


def test_multipart_body_length_in_bytes():
    _, data = load(CORPUS / "valid_multipart_body.sip")
    msg = full_parse(data)
    assert msg.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert "短信".encode() in msg.body
