"""F-425 outgoing call authentication and F-414 accepted-address lists."""

import pytest

from goip_tw.sip.admission import Admission, AddressSet
from goip_tw.sip.message import Request


class FakeVerifier:
    """Records calls; answers from a table keyed by the Authorization header."""

    def __init__(self):
        self.calls = []

    def verify(self, request, source):
        self.calls.append(source)
        auth = request.headers.get("authorization")
        return {None: ("missing", None), "good": ("ok", "goip-01"),
                "bad": ("bad", None), "locked": ("locked", None)}[auth]


def invite(auth=None):
    req = Request("INVITE", "sip:13800138000@127.0.0.1")
    if auth:
        req.headers.add("Authorization", auth)
    return req


TRUSTED = AddressSet.parse("10.0.0.5:5060", "192.168.1.X,172.16.0.0/12", "pbx.example")


@pytest.mark.parametrize("host,known", [
    ("10.0.0.5", True), ("10.0.0.6", False), ("192.168.1.0", True), ("192.168.1.255", True),
    ("192.168.2.1", False), ("172.20.1.1", True), ("pbx.example", True), ("8.8.8.8", False),
    ("192.168.1", False), ("", False),
])
def test_address_set(host, known):
    assert TRUSTED.contains(host) is known


def test_address_set_x_lower_case_ipv6_and_hosts():
    s = AddressSet.parse("10.x.x.1,[::1]:5060")
    assert s.contains("10.200.3.1") and not s.contains("10.200.3.2")
    assert s.contains("::1")
    assert not AddressSet.parse("")
    assert AddressSet.parse("").with_hosts(["127.0.0.1"]).contains("127.0.0.1")


# mode, source host, Authorization -> expected action
TABLE = [
    ("none", "8.8.8.8", None, "accept"),
    ("address", "10.0.0.5", None, "accept"),
    ("address", "8.8.8.8", "good", "reject"),
    ("password", "10.0.0.5", None, "challenge"),
    ("password", "8.8.8.8", "good", "accept"),
    ("password", "8.8.8.8", "bad", "challenge"),
    ("password", "8.8.8.8", "locked", "reject"),
    ("both", "8.8.8.8", "good", "reject"),
    ("both", "10.0.0.5", None, "challenge"),
    ("both", "10.0.0.5", "good", "accept"),
    ("address_or_password", "10.0.0.5", None, "accept"),
    ("address_or_password", "8.8.8.8", None, "challenge"),
    ("address_or_password", "8.8.8.8", "good", "accept"),
    ("address_or_password", "8.8.8.8", "locked", "reject"),
]


@pytest.mark.parametrize("mode,host,auth,action", TABLE)
def test_modes(mode, host, auth, action):
    verdict = Admission(mode, TRUSTED, FakeVerifier()).check(invite(auth), (host, 5060))
    assert verdict.action == action
    if action == "reject":
        assert verdict.code == 403
    if action == "challenge":
        assert verdict.code == 401
    if action == "accept" and auth == "good":
        assert verdict.identity == "user:goip-01"


def test_fresh_install_accepts_nobody():
    """Secure default: no servers, no password -> nothing from anywhere."""
    gate = Admission("address_or_password", AddressSet(), verifier=None)
    for host in ("127.0.0.1", "10.0.0.5", "8.8.8.8"):
        assert gate.check(invite("good"), (host, 5060)).action == "reject"


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        Admission("open", AddressSet())


def test_port_in_an_item_pins_the_source_port():
    s = AddressSet.parse("127.0.0.1:5070,10.0.0.X")
    assert s.contains("127.0.0.1", 5070)
    assert not s.contains("127.0.0.1", 5071)
    assert s.contains("10.0.0.9", 40000)
    gate = Admission("address", s)
    assert gate.check(invite(), ("127.0.0.1", 5070)).accepted
    assert gate.check(invite(), ("127.0.0.1", 5999)).action == "reject"


def test_refusals_are_logged_for_fail2ban(monkeypatch):
    import re

    from twisted.logger import Logger, formatEvent

    from goip_tw.sip import admission
    from goip_tw.sip.auth import FAIL2BAN_REGEX

    events = []
    monkeypatch.setattr(admission, "log", Logger(observer=events.append))
    req = invite()
    req.headers.add("From", "<sip:evil user@8.8.8.8>;tag=1")
    Admission("address", TRUSTED).check(req, ("8.8.8.8", 5060))
    line = formatEvent(events[-1])
    assert re.search(FAIL2BAN_REGEX.replace("<HOST>", r"8\.8\.8\.8"), line), line
    assert "reason=address_not_trusted" in line
