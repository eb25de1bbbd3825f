"""Digest auth: RFC 2617/7616 vectors, client/server round trips, lockout, fail2ban line."""

from __future__ import annotations

import re

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher, formatEvent

from goip_tw.sip.auth import (FAIL2BAN_REGEX, DigestClient, DigestServer, digest_response,
                              is_stale, parse_auth_header)
from goip_tw.sip.message import Request, parse_message
from goip_tw.sip.transport import Address

SRC = ("127.0.0.1", 5070)
OTHER = ("127.0.0.9", 5070)
USERS = {"1001": "s3cret"}


def test_rfc2617_md5_vector():
    assert digest_response("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET",
                           "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "auth",
                           "00000001", "0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_sha256_vector():
    assert digest_response(
        "SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
        "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "auth",
        "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ") == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")


def test_parse_auth_header_quotes_and_commas():
    scheme, p = parse_auth_header('Digest realm="a, \\"b\\"", nonce=xyz ,qop="auth,auth-int"')
    assert scheme == "digest" and p["realm"] == 'a, "b"' and p["nonce"] == "xyz"
    assert p["qop"] == "auth,auth-int"


def invite(call_id="c1", cseq=1, branch="z9hG4bKone"):
    return Request("INVITE", "sip:13800138000@127.0.0.1:5060", [
        ("via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch}"),
        ("from", "<sip:1001@127.0.0.1>;tag=f1"), ("to", "<sip:13800138000@127.0.0.1>"),
        ("call-id", call_id), ("cseq", f"{cseq} INVITE")])


def round_trip(server, client, user, password, alg_order=None, source=SRC):
    req = invite()
    challenge = server.challenge(req, source=source)
    if alg_order:
        vals = challenge.headers.get_all("www-authenticate")
        challenge.headers.set_all("www-authenticate",
                                  [v for a in alg_order for v in vals if f"algorithm={a}" in v])
    answered = client.authorize(req, parse_message(challenge.to_bytes()), user, password)
    answered.headers.add("via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKtwo", first=True)
    return server.verify(parse_message(answered.to_bytes()), source, USERS.get), answered


def test_client_takes_first_supported_algorithm():
    clock = Clock()
    server = DigestServer(clock, realm="gw", algorithms=("SHA-256", "MD5"))
    client = DigestClient()
    (outcome, user), req = round_trip(server, client, "1001", "s3cret")
    assert (outcome, user) == ("ok", "1001")
    assert "algorithm=SHA-256" in req.headers.get("authorization")
    (outcome, _), req = round_trip(server, client, "1001", "s3cret", ["MD5"])
    assert outcome == "ok" and "algorithm=MD5" in req.headers.get("authorization")


def test_wrong_password_and_unknown_user_look_identical():
    clock = Clock()
    server, client = DigestServer(clock, realm="gw", max_failures=100), DigestClient()
    (o1, _), _ = round_trip(server, client, "1001", "wrong")
    (o2, _), _ = round_trip(server, client, "nobody", "wrong")
    assert o1 == o2 == "bad"
    r1 = server.challenge(invite(), source=SRC).to_bytes()
    r2 = server.challenge(invite(), source=SRC).to_bytes()
    assert r1 == r2  # same second, same source: the same bytes whoever asks


def test_nonce_bound_to_source_and_goes_stale():
    clock = Clock()
    clock.advance(1000)
    server, client = DigestServer(clock, realm="gw", nonce_ttl=60), DigestClient()
    req = invite()
    challenge = server.challenge(req, source=SRC)
    answered = client.authorize(req, challenge, "1001", "s3cret")
    assert server.verify(answered, OTHER, USERS.get)[0] == "bad"
    clock.advance(61)
    assert server.verify(answered, SRC, USERS.get)[0] == "stale"
    again = server.challenge(answered, source=SRC)
    assert is_stale(again)
    assert not is_stale(server.challenge(invite(), source=SRC))


def test_lockout_per_source_survives_call_id_changes():
    clock = Clock()
    server, client = DigestServer(clock, realm="gw", max_failures=3, lockout=600), \
        DigestClient()
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        for i in range(3):
            req = invite(call_id=f"scan-{i}", branch=f"z9hG4bKs{i}")
            ch = server.challenge(req, source=SRC)
            bad = client.authorize(req, ch, f"user{i}", "guess")
            server.verify(bad, SRC, USERS.get)
        req = invite(call_id="fresh")
        good = client.authorize(req, server.challenge(req, source=SRC), "1001", "s3cret")
        assert server.verify(good, SRC, USERS.get)[0] == "locked"
        assert server.verify(good, OTHER, USERS.get)[0] == "bad"  # nonce from SRC
        other_req = invite(call_id="other")
        ok = client.authorize(other_req, server.challenge(other_req, source=OTHER),
                              "1001", "s3cret")
        assert server.verify(ok, OTHER, USERS.get)[0] == "ok"
        clock.advance(601)
        req = invite(call_id="later")
        good = client.authorize(req, server.challenge(req, source=SRC), "1001", "s3cret")
        assert server.verify(good, SRC, USERS.get)[0] == "ok"
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [formatEvent(e) for e in events if e.get("log_namespace") == "goip.sip.auth"
             and e.get("log_level") == LogLevel.warn]
    pattern = re.compile(FAIL2BAN_REGEX.replace("<HOST>", r"(?P<host>\S+)"))
    hosts = [m.group("host") for m in map(pattern.search, lines) if m]
    assert hosts.count("127.0.0.1") >= 3


def test_client_refuses_challenges_for_other_requests_and_servers():
    clock = Clock()
    server, client = DigestServer(clock, realm="gw"), DigestClient()
    req = invite()
    foreign = server.challenge(invite(call_id="someone-else"), source=SRC)
    assert client.authorize(req, foreign, "1001", "s3cret") is None
    mine = server.challenge(req, source=SRC)
    assert client.authorize(req, mine, "1001", "s3cret",
                            sent_to=Address("udp", "10.1.1.1", 5060),
                            server="sip.example.test") is None
    assert client.authorize(req, mine, "1001", "s3cret",
                            sent_to=Address("udp", "127.0.0.1", 5060),
                            server="127.0.0.1:5060") is not None


def test_proxy_challenge_uses_proxy_headers_and_nc_counts():
    clock = Clock()
    server, client = DigestServer(clock, realm="gw"), DigestClient()
    req = invite()
    ch = server.challenge(req, proxy=True, source=SRC)
    assert ch.status == 407 and ch.headers.get("proxy-authenticate")
    a1 = client.authorize(req, ch, "1001", "s3cret")
    a2 = client.authorize(req, ch, "1001", "s3cret")
    assert "nc=00000001" in a1.headers.get("proxy-authorization")
    assert "nc=00000002" in a2.headers.get("proxy-authorization")
    assert server.verify(a2, SRC, USERS.get, proxy=True) == ("ok", "1001")
    assert server.verify(a2, SRC, USERS.get, proxy=False)[0] == "missing"
