"""Registration state machine on a Clock: refresh, retry, failover and return,
unregister, per-line enable/disable (F-410, F-412, F-413, F-414, F-304)."""

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.config.sections.voip import SipAccount, SipGroup, VoipConfig
from goip_tw.sip.registration import (DISABLED, FAILED, REGISTERED, STOPPED, Registration,
                                      refresh_delay, registrations_for)


class FakeServers:
    """Answers REGISTERs per server: 'ok', 'challenge', 'down' (timeout) or a code."""

    def __init__(self, clock):
        self.clock = clock
        self.mode = {}
        self.sent = []          # (server, expires, authorized)

    def send(self, request, server):
        expires = int(request.headers.get("expires"))
        authorized = "authorization" in request.headers
        self.sent.append((server, expires, authorized))
        mode = self.mode.get(server, "challenge")
        if mode == "down":
            d = defer.Deferred()
            self.clock.callLater(32, d.errback, TimeoutError("timer F"))
            return d
        if isinstance(mode, int):
            return defer.succeed(request.make_response(mode))
        if mode == "challenge" and not authorized:
            return defer.succeed(request.make_response(401))
        resp = request.make_response(200)
        if expires:
            contact = request.headers.get("contact")
            resp.headers.add("Contact", f"{contact};expires={min(expires, 40)}")
        return defer.succeed(resp)

    @staticmethod
    def authorize(request, challenge, username, password):
        retry = request.copy()
        retry.headers.set("Authorization", f'Digest username="{username}"')
        return retry


ACCOUNT = SipAccount(auth_id="goip-01", password="pw", registrar="10.0.0.1:5070",
                     backup_registrar="10.0.0.2", expires=60)


def make(clock, servers, account=ACCOUNT, **kw):
    states = []
    reg = Registration("main", account, clock=clock, send=servers.send,
                       authorize=servers.authorize, contact_host="127.0.0.1",
                       contact_port=5060, retry=30, failover_after=2, probe=60,
                       on_change=states.append, **kw)
    return reg, states


def test_register_with_challenge_and_refresh():
    clock = Clock()
    servers = FakeServers(clock)
    reg, states = make(clock, servers)
    reg.start()
    assert reg.state == REGISTERED and reg.granted == 40
    assert servers.sent == [("10.0.0.1:5070", 60, False), ("10.0.0.1:5070", 60, True)]
    clock.advance(refresh_delay(40))     # re-REGISTER half-way through the granted 40 s
    assert len(servers.sent) == 4 and reg.registered
    assert states[-1].registered and states[-1].server == "10.0.0.1:5070"
    d = reg.stop()
    assert servers.sent[-2:] == [("10.0.0.1:5070", 0, False), ("10.0.0.1:5070", 0, True)]
    assert d.called and reg.state == STOPPED
    assert clock.getDelayedCalls() == []


def test_failover_to_backup_and_return():
    clock = Clock()
    servers = FakeServers(clock)
    servers.mode["10.0.0.1:5070"] = "down"
    reg, states = make(clock, servers)
    reg.start()
    clock.advance(32)                    # first attempt times out
    assert reg.state == FAILED and reg.server == "10.0.0.1:5070"
    clock.advance(30)                    # retry ...
    clock.advance(32)                    # ... second failure -> fail over at once
    assert reg.registered and reg.server == "10.0.0.2"
    # the main server comes back: the probe moves us back and unregisters the backup
    servers.mode["10.0.0.1:5070"] = "challenge"
    clock.advance(60)
    assert reg.registered and reg.server == "10.0.0.1:5070"
    assert ("10.0.0.2", 0, True) in servers.sent
    reg.stop()
    assert clock.getDelayedCalls() == []


def test_failure_code_retries_without_backup():
    clock = Clock()
    servers = FakeServers(clock)
    servers.mode["10.0.0.1:5070"] = 403
    reg, states = make(clock, servers, account=SipAccount(
        auth_id="x", registrar="10.0.0.1:5070"))
    reg.start()
    assert reg.state == FAILED and "403" in reg.reason
    servers.mode["10.0.0.1:5070"] = "ok"
    clock.advance(30)
    assert reg.registered
    reg.stop()
    assert clock.getDelayedCalls() == []


def test_disable_when_sim_unregistered_and_enable_again():
    clock = Clock()
    servers = FakeServers(clock)
    reg, states = make(clock, servers)
    reg.start()
    assert reg.registered
    reg.disable()
    assert reg.state == DISABLED and servers.sent[-1][1] == 0
    assert clock.getDelayedCalls() == []
    reg.enable()
    assert reg.registered
    reg.stop()


def test_wrong_password_is_a_failure_not_a_loop():
    clock = Clock()
    servers = FakeServers(clock)
    servers.mode["10.0.0.1:5070"] = "refuse"
    servers.send_orig = servers.send

    def send(request, server):
        servers.sent.append((server, 0, "authorization" in request.headers))
        return defer.succeed(request.make_response(401))

    reg, states = make(clock, servers, account=SipAccount(auth_id="x", registrar="10.0.0.1:5070"))
    reg._send = send
    reg.start()
    assert reg.state == FAILED and "refused" in reg.reason
    assert len(servers.sent) == 2
    reg.stop()
    assert clock.getDelayedCalls() == []


def test_nothing_to_register():
    clock = Clock()
    reg, states = make(clock, FakeServers(clock), account=SipAccount())
    reg.start()
    assert reg.state == DISABLED and clock.getDelayedCalls() == []


def test_registrations_for_modes():
    single = registrations_for(VoipConfig(account=ACCOUNT), 4)
    assert [(p.key, p.lines) for p in single] == [("main", (1, 2, 3, 4))]
    per_line = registrations_for(VoipConfig(
        mode="per_line", auto_configure_lines=True,
        lines=(SipAccount(auth_id="101", registrar="r"),)), 3)
    assert [(p.key, p.account.auth_id) for p in per_line] == [
        ("line1", "101"), ("line2", "102"), ("line3", "103")]
    groups = registrations_for(VoipConfig(mode="per_group", groups=(
        SipGroup(name="a", lines=(1, 2), account=ACCOUNT),
        SipGroup(name="b", lines=(3,), account=ACCOUNT))), 3)
    assert [(p.key, p.lines) for p in groups] == [("group:a", (1, 2)), ("group:b", (3,))]
    assert registrations_for(VoipConfig(mode="trunk", trunk_gateway1="pbx"), 2) == ()
    trunk = registrations_for(VoipConfig(mode="trunk", trunk_gateway1="pbx:5080",
                                         trunk_expires=60, account=ACCOUNT), 2)
    assert trunk[0].account.registrar == "pbx:5080" and trunk[0].account.backup_registrar == ""


@pytest.mark.parametrize("granted,delay", [(40, 20), (60, 30), (3600, 3540), (1, 1)])
def test_refresh_delay(granted, delay):
    assert refresh_delay(granted) == delay


def test_interval_too_brief_raises_expiry_and_stale_nonce_is_retried():
    clock = Clock()
    sent = []

    def send(request, server):
        expires = int(request.headers.get("expires"))
        auth = request.headers.get("authorization")
        sent.append((expires, auth))
        if expires < 120:
            resp = request.make_response(423)
            resp.headers.add("Min-Expires", "120")
            return defer.succeed(resp)
        if auth is None:
            return defer.succeed(request.make_response(401))
        if auth == "first":
            resp = request.make_response(401)
            resp.headers.add("WWW-Authenticate", 'Digest realm="r", nonce="n2", stale=true')
            return defer.succeed(resp)
        return defer.succeed(request.make_response(200))

    answers = iter(["first", "second"])

    def authorize(request, challenge, username, password):
        retry = request.copy()
        retry.headers.set("Authorization", next(answers))
        return retry

    reg = Registration("main", SipAccount(auth_id="x", registrar="10.0.0.1", expires=60),
                       clock=clock, send=send, authorize=authorize,
                       contact_host="127.0.0.1", contact_port=5060)
    reg.start()
    assert reg.registered and reg.granted == 120
    assert sent == [(60, None), (120, None), (120, "first"), (120, "second")]
    reg.stop()
