"""F-498 e-mail forwarding against a real SMTP server (aiosmtpd) on 127.0.0.1."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from goip_tw.sms.mailer import SmtpSettings, build_message, header_safe, send_message
from tests.modem.simhelp import wait_until
from tests.peers.smtp import SmtpSink

EVIL = "hi\r\nBcc: victim@example.com\r\n.\r\nMAIL FROM:<x@y>\r\n\u2028Subject: pwned 😀 你好"


pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(params=["starttls", "tls"])
def sink(request, tmp_path):
    s = SmtpSink(tmp_path, mode=request.param)
    s.start()
    yield s
    s.stop()


def settings_for(sink, **kw):
    base = dict(
        host="127.0.0.1",
        port=sink.port,
        from_addr="gw@example.org",
        to_addrs=("owner@example.org",),
        username=sink.username,
        password=sink.password,
        security=sink.mode,
        ca_file=str(sink.ca_path),
        timeout=10,
    )
    base.update(kw)
    return SmtpSettings(**base)


def test_header_safe_drops_line_breaks():
    assert header_safe("+86\r\nBcc: x\u2028y\x00") == "+86 Bcc: x y"


def test_message_has_no_injected_headers():
    raw = build_message(
        from_addr="gw@example.org",
        to_addrs=["a@example.org"],
        sms_sender="+8613\r\nBcc: victim@example.com",
        line=1,
        text=EVIL,
        received_at="2026-01-01T00:00:00Z",
    )
    assert b"\r" not in raw
    head, _, body = raw.partition(b"\n\n")
    names = [l.split(b":")[0] for l in head.split(b"\n") if l and not l[:1].isspace()]
    assert b"Bcc" not in names
    assert names.count(b"Subject") == 1
    assert b"\n.\n" not in body


@pytest_twisted.inlineCallbacks
def test_send_utf8_body_with_auth(sink):
    msg = build_message(
        from_addr="gw@example.org",
        to_addrs=["owner@example.org"],
        sms_sender="+8613670128297",
        line=2,
        text=EVIL,
        received_at="2026-01-01T00:00:00Z",
    )
    yield send_message(reactor, settings_for(sink), msg)
    assert len(sink.messages) == 1
    got = sink.messages[0]
    assert got["Subject"] == "SMS from +8613670128297 (L2)"
    assert got["From"] == "gw@example.org"
    assert got["To"] == "owner@example.org"
    assert got["Bcc"] is None
    assert got.get_content_charset() == "utf-8"
    assert EVIL.replace("\r\n", "\n") in got.get_content().replace("\r\n", "\n")
    assert sink.envelopes == [("gw@example.org", ["owner@example.org"])]
    assert sink.mbox_path.exists()


@pytest_twisted.inlineCallbacks
def test_wrong_password_fails(sink):
    msg = build_message(
        from_addr="gw@example.org", to_addrs=["o@example.org"], sms_sender="1",
        line=1, text="x", received_at="t",
    )
    with pytest.raises(Exception):
        yield send_message(reactor, settings_for(sink, password="nope"), msg)
    assert sink.messages == []


@pytest_twisted.inlineCallbacks
def test_untrusted_certificate_refused(sink, tmp_path):
    (tmp_path / "other").mkdir()
    other = SmtpSink(tmp_path / "other")  # never started: only its certificate
    msg = build_message(
        from_addr="gw@example.org", to_addrs=["o@example.org"], sms_sender="1",
        line=1, text="x", received_at="t",
    )
    with pytest.raises(Exception):
        yield send_message(reactor, settings_for(sink, ca_file=str(other.ca_path)), msg)
    assert sink.messages == []


@pytest_twisted.inlineCallbacks
def test_received_sms_reaches_inbox_after_a_temporary_failure(tmp_path):
    from twisted.internet.task import Clock

    from goip_tw.sms.forward import ForwardRules, Forwarder, email_sender
    from goip_tw.sms.inbound import InboundSms
    from tests.sms.inbound_support import open_store, part

    sink = SmtpSink(tmp_path, mode="starttls", fail_first=1)
    sink.start()
    store = yield open_store(tmp_path / "gw.sqlite")
    try:
        clock = Clock()
        settings = settings_for(sink)
        fwd = Forwarder(store, clock, ForwardRules(email_to=("owner@example.org",)),
                        {"email": email_sender(reactor, settings)}, base_delay=10)
        inbound = InboundSms(store, clock, planner=fwd)
        yield fwd.start()
        yield inbound.part_received(part("Grüße 😀\r\nBcc: x@y", line=4))
        clock.advance(0)
        rows = yield wait_for_row(store, lambda r: r["attempts"] == 1)
        assert tuple(rows[0]) == ("pending", 1) and sink.messages == []
        # The read can see the commit before the writer thread handed its result to
        # the reactor, i.e. before the forwarder armed the retry: wait for that too.
        yield wait_until(clock.getDelayedCalls, what="the retry armed")
        clock.advance(10)
        rows = yield wait_for_row(store, lambda r: r["state"] == "done")
        assert tuple(rows[0]) == ("done", 2)
        got = sink.messages[0]
        assert got["Subject"] == "SMS from +8613670128297 (L4)"
        assert got["Bcc"] is None
        assert "Grüße 😀\nBcc: x@y" in got.get_content().replace("\r\n", "\n")
        fwd.stop()
        assert clock.getDelayedCalls() == []
    finally:
        yield store.stop()
        sink.stop()


@defer.inlineCallbacks
def wait_for_row(store, predicate):
    """SMTP runs on the real reactor: poll (bounded) until the job row matches."""
    for _ in range(250):
        rows = yield store.query("SELECT state, attempts FROM sms_forward")
        if rows and predicate(rows[0]):
            return rows
        yield deferLater(reactor, 0.02)
    raise AssertionError(f"forward row never matched: {[tuple(r) for r in rows]}")


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(sender=st.text(max_size=60), text=st.text(max_size=300))
def test_no_sms_content_ever_becomes_a_header(sender, text):
    import email
    import email.policy

    raw = build_message(from_addr="gw@example.org", to_addrs=["o@example.org"],
                        sms_sender=sender, line=1, text=text, received_at="t")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert sorted(msg.keys()) == sorted(["From", "To", "Subject", "Date", "Message-ID",
                                         "X-GoIP-Line", "X-GoIP-Sender", "Content-Type",
                                         "Content-Transfer-Encoding", "MIME-Version"])
    # only line ends are normalised (CR, LF, CRLF -> LF), as MIME text requires
    assert text.replace("\r\n", "\n").replace("\r", "\n") in msg.get_content()


@pytest_twisted.inlineCallbacks
def test_plain_mode_on_a_trusted_lan(tmp_path):
    plain = SmtpSink(tmp_path, mode="plain")
    plain.start()
    try:
        msg = build_message(from_addr="gw@example.org", to_addrs=["o@example.org"],
                            sms_sender="+1", line=1, text="ok", received_at="t")
        yield send_message(reactor, settings_for(plain, security="none", ca_file=""), msg)
        assert [m["Subject"] for m in plain.messages] == ["SMS from +1 (L1)"]
    finally:
        plain.stop()


@pytest_twisted.inlineCallbacks
def test_starttls_required_but_not_offered_fails(tmp_path):
    plain = SmtpSink(tmp_path, mode="plain")
    plain.start()
    try:
        msg = build_message(from_addr="gw@example.org", to_addrs=["o@example.org"],
                            sms_sender="+1", line=1, text="secret", received_at="t")
        with pytest.raises(Exception):
            yield send_message(reactor, settings_for(plain, security="starttls"), msg)
        assert plain.messages == [] and plain.auth_failures == 0  # password never sent
    finally:
        plain.stop()
