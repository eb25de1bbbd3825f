"""Calls end to end with real peers on 127.0.0.1 (issue 7 tests).

baresip (Debian) registered to Kamailio calls a number; Kamailio routes it to the
gateway's SIP service; the controller picks a simulated line (modules on ptys,
F-106); the simulated remote phone answers; hang-ups travel both ways; the CDR
row lands in a real SQLite store.  Incoming: a simulated remote phone calls a
SIM and the gateway forwards the call to baresip (auto-answer) with the caller
ID per F-461.  Peers are started by tests/peers/harness.py and stopped by PID.
"""

from __future__ import annotations

import glob

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.serialport import SerialPort

from goip_tw.calls.cdr import CdrRepository
from goip_tw.calls.controller import CallController
from goip_tw.calls.linestate import LineStates
from goip_tw.calls.mediaside import NullMedia
from goip_tw.calls.modemside import ModemLines
from goip_tw.calls.sipside import SipSide
from goip_tw.config.sections.calls import CallsConfig, LineCalls
from goip_tw.config.sections.sip import SipConfig
from goip_tw.config.sections.voip import SipAccount, VoipConfig
from goip_tw.events import EventBus
from goip_tw.modem.api import Modem
from goip_tw.modem.at import AtEngine
from goip_tw.modem.audio import open_voice_port
from goip_tw.simulator import Network
from goip_tw.store.sqlite import SqliteStore
from tests.peers.harness import free_port, poll_until, run_tool, sipsak_argv


ECHO = "+12125550190"
#: Kamailio users: the softphone, and AoRs bound to the gateway's socket (kamcmd
#: would store an all-digit user name as a number, so they are seeded at start).
USERS = {"alice": "secret", "12125550190": "gwpass", "12125550177": "gwpass",
         "12125550166": "gwpass", "goip-01": "gwpass", "101": "bobpass"}


class Gateway:
    """The calls path assembled from the real pieces (what CallsService wires)."""

    def __init__(self, tmp_path, kamailio, calls_config: CallsConfig, media=None,
                 dtmf_mode="rfc4733", outgoing_auth="address"):
        self.kamailio = kamailio
        self.network = Network(reactor, reg_delay=0.2, boot_delay=0.1)
        for _ in range(2):
            self.network.add_module("quectel", 1)
        self.network.add_remote_phone(ECHO, answer_after=1.0, audio="echo")
        self.config = calls_config
        self.events = EventBus()
        self.published = []
        self.events.subscribe("line.call_state",
                              lambda topic, **f: self.published.append(f))
        self.store = SqliteStore(str(tmp_path / "gw.sqlite"), reactor=reactor)
        self.cdrs = CdrRepository(self.store)
        voip = VoipConfig(account=SipAccount(auth_id="goip-01", password="gwpass",
                                             registrar=kamailio.address, expires=0),
                          outgoing_auth=outgoing_auth)
        from goip_tw.sip.service import SipService

        self.sip = SipService(reactor, SipConfig(
            bind_address="127.0.0.1", local_port=free_port(), tcp=False,
            keepalive_mode="off", nict_timeout=2.0, ict_timeout=4.0), voip, 2)
        self.media = media or NullMedia()
        self.lines = ModemLines(reactor)
        self.sip_side = SipSide(self.sip, self.media)
        self.ctl = CallController(
            clock=reactor, sip=self.sip_side, lines=self.lines, media=self.media,
            line_states=LineStates(self.events, reactor), calls_config=lambda: self.config,
            cdrs=self.cdrs, events=self.events, dtmf_mode=lambda: dtmf_mode)
        self.lines.controller = self.sip_side.controller = self.ctl
        self.sip.set_call_handler(self.sip_side)
        self.ports, self.modems = [], []

        self.voice = {}

    @defer.inlineCallbacks
    def start(self):
        yield self.store.start()
        self.network.start()
        yield poll_until(reactor, lambda: all(m.at_path for m in self.network.modules), 5)
        for n, module in enumerate(self.network.modules, 1):
            engine = AtEngine(reactor, name=f"line{n}")
            self.ports.append(SerialPort(engine, module.at_path, reactor, baudrate=115200))
            if module.audio_path:
                self.voice[n] = open_voice_port(reactor, module.audio_path, name=f"voice{n}")
            modem = Modem(engine, reactor, name=f"line{n}")
            self.modems.append(modem)
            yield modem.initialise()
            yield modem.read_sim_identity()
            yield poll_until(reactor, lambda m=module: m.registered, 5)
            yield modem.registration()
            self.lines.add_line(n, modem)
        self.sip.startService()

    @defer.inlineCallbacks
    def bind(self, aor):
        """Register ``aor`` at Kamailio with the gateway's socket as contact (sipsak)."""
        out, err, code = yield run_tool(reactor, sipsak_argv(
            "-U", "-i", "-C", f"sip:{aor}@127.0.0.1:{self.sip.port}", "-x", "300",
            "-s", f"sip:{aor}@{self.kamailio.address}", "-a", "gwpass", "-u", aor),
            timeout=15)
        # "s:" keeps kamcmd from reading an all-digit AoR as a number
        assert self.kamailio.contacts(f"s:{aor}"), out + err

    def states(self, line):
        return [f["state"] for f in self.published if f["line"] == line]

    @defer.inlineCallbacks
    def stop(self):
        self.ctl.hangup_all()
        yield self.sip.stopService()
        for modem in self.modems:
            modem.stop()
        for port in self.ports:
            port.loseConnection()
        for port in self.voice.values():
            port.close()
        if hasattr(self.media, "stopService"):
            yield self.media.stopService()
        self.network.stop()
        yield self.store.stop()


@pytest_twisted.async_yield_fixture
async def gateway_factory(tmp_path, kamailio_factory, monkeypatch):
    monkeypatch.setattr("goip_tw.store.migrations.AREA_MODULES", ("goip_tw.calls.schema",))
    kamailio = kamailio_factory(users=USERS)
    made = []

    @defer.inlineCallbacks
    def make(config=None, **kw):
        gw = Gateway(tmp_path, kamailio, config or CallsConfig(), **kw)
        made.append(gw)
        yield gw.start()
        return gw

    yield make
    for gw in made:
        await gw.stop()


@defer.inlineCallbacks
def alice_dials(gw, baresip_factory, user, **kw):
    """Bind ``user`` to the gateway at Kamailio, register baresip "alice", dial."""
    yield gw.bind(user)
    phone = baresip_factory("alice", registrar=gw.kamailio.address, password="secret", **kw)
    yield poll_until(reactor, lambda: gw.kamailio.contacts("alice"), timeout=10)
    phone.command("dial", f"sip:{user}@{gw.kamailio.address}")
    return phone


@pytest_twisted.inlineCallbacks
def test_baresip_calls_mobile_and_hangs_up(gateway_factory, baresip_factory):
    gw = yield gateway_factory()
    phone = yield alice_dials(gw, baresip_factory, "12125550190")
    yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    assert gw.network.active_calls()
    assert gw.states(1) == ["DIALING", "ALERTING", "CONNECTED"]
    phone.command("hangup")
    yield poll_until(reactor, lambda: not gw.network.active_calls(), timeout=10)
    yield poll_until(reactor, lambda: not gw.ctl.calls and not gw.ctl.pending_cdrs, 5)
    rows = yield gw.cdrs.recent()
    assert len(rows) == 1
    row = rows[0]
    assert (row["line"], row["direction"], row["end_side"]) == (1, "out", "sip")
    assert row["callee_before"] == "12125550190" and row["caller_before"] == "alice"
    assert row["answer_time"] is not None and row["iccid"] == "8900100000000000011"
    assert row["sip_call_id"]


@pytest_twisted.inlineCallbacks
def test_remote_phone_hangs_up_first(gateway_factory, baresip_factory):
    gw = yield gateway_factory()
    gw.network.add_remote_phone("+12125550177", answer_after=1.0, hangup_after=2.0)
    phone = yield alice_dials(gw, baresip_factory, "12125550177")
    yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield phone.wait_event(reactor, "CALL_CLOSED", timeout=15)
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 5)
    rows = yield gw.cdrs.recent()
    assert rows[0]["end_side"] == "mobile"


@pytest.mark.parametrize("behaviour,code", [
    ({"busy": True}, 486), ({"reject": True}, 603), ({"unreachable": True}, 480),
    ({"answer_after": None}, 408),
])
@pytest_twisted.inlineCallbacks
def test_failures_reach_baresip_as_sip_codes(gateway_factory, baresip_factory,
                                             behaviour, code):
    gw = yield gateway_factory(CallsConfig(no_answer_timeout=4))
    gw.network.add_remote_phone("+12125550166", **behaviour)
    phone = yield alice_dials(gw, baresip_factory, "12125550166")
    event = yield phone.wait_event(reactor, "CALL_CLOSED", timeout=20)
    assert str(code) in event.get("param", ""), event
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 5)
    rows = yield gw.cdrs.recent()
    assert rows[0]["sip_code"] == code


@pytest.mark.parametrize("cid_mode,shown", [("from", "12125550155"), ("off", "goip-01")])
@pytest_twisted.inlineCallbacks
def test_incoming_forwarded_to_baresip(gateway_factory, baresip_factory, cid_mode, shown):
    phone = baresip_factory("bob")
    gw = yield gateway_factory(CallsConfig(lines=(LineCalls(
        incoming_forward=f"bob@127.0.0.1:{phone.sip_port}", cid_mode=cid_mode),)))
    caller = gw.network.add_remote_phone("+12125550155")
    caller.dial(gw.modems[0].sim.own_number)
    event = yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    assert shown in event.get("peeruri", ""), event
    yield poll_until(reactor, lambda: gw.network.active_calls()
                     and gw.network.active_calls()[0].state == "active", 10)
    assert gw.states(1) == ["INCOMING", "CONNECTED"]
    caller.hangup()
    yield phone.wait_event(reactor, "CALL_CLOSED", timeout=10)
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 5)
    rows = yield gw.cdrs.recent()
    assert rows[0]["direction"] == "in" and rows[0]["caller_before"] == "+12125550155"


def dominant(path, freqs=(440, 1000, 1400)):
    """(strongest of ``freqs``, seconds, RMS) over the second half of a 16-bit mono
    WAV; the RMS guards against silence, where any frequency "wins"."""
    import wave

    with wave.open(path, "rb") as w:
        return dominant_pcm(w.readframes(w.getnframes()), w.getframerate(), freqs)


def dominant_pcm(pcm, rate=8000, freqs=(440, 1000, 1400)):
    import array
    import math

    s = array.array("h", bytes(pcm[:len(pcm) - len(pcm) % 2]))
    s = s[len(s) // 2:]

    def power(freq):
        k = 2 * math.cos(2 * math.pi * freq / rate)
        a = b = 0.0
        for x in s:
            a, b = x + k * a - b, a
        return a * a + b * b - k * a * b
    rms = math.sqrt(sum(x * x for x in s) / len(s)) if s else 0.0
    return max(freqs, key=power), len(s) / rate, rms


@pytest_twisted.inlineCallbacks
def test_tone_from_baresip_comes_back_through_echo_phone(gateway_factory, baresip_factory):
    """Audio both ways: baresip's 440 Hz goes out on the line, the echo phone returns
    it, and baresip records it (sndfile dump) -- the demo's "hear yourself" path."""
    from goip_tw.config.sections.media import MediaConfig
    from goip_tw.media.service import MediaService

    holder = {}
    media = MediaService(reactor, MediaConfig(codecs=("PCMU", "PCMA")),
                         voice_port_of=lambda n: holder["gw"].voice.get(n),
                         interface="127.0.0.1")
    gw = yield gateway_factory(media=media)
    holder["gw"] = gw
    phone = yield alice_dials(gw, baresip_factory, "12125550190")
    yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield defer_sleep(4)
    phone.command("hangup")
    yield phone.wait_event(reactor, "CALL_CLOSED", timeout=10)
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 5)
    dumps = glob.glob(str(phone.workdir / "dump-*-dec.wav"))
    assert dumps, phone.log_text()[-2000:]
    freq, seconds, rms = dominant(dumps[0])
    assert seconds > 1 and rms > 300 and freq == 440, (freq, seconds, rms)
    rows = yield gw.cdrs.recent()
    assert rows[0]["codec"] in ("PCMU", "PCMA")
    assert rows[0]["one_way_audio"] == 0


def defer_sleep(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


def media_for(holder, dtmf_mode="rfc4733"):
    from goip_tw.config.sections.media import MediaConfig
    from goip_tw.media.service import MediaService

    return MediaService(reactor, MediaConfig(codecs=("PCMU", "PCMA"), dtmf_mode=dtmf_mode),
                        voice_port_of=lambda n: holder["gw"].voice.get(n),
                        interface="127.0.0.1")


@pytest_twisted.inlineCallbacks
def test_two_stage_outgoing_rfc4733(gateway_factory, baresip_factory):
    """Item 3: baresip calls the gateway's own number, hears dial tone, keys the
    number and '#' (RFC 4733 telephone-events); the line dials it."""
    holder = {}
    gw = yield gateway_factory(media=media_for(holder))
    holder["gw"] = gw
    phone = yield alice_dials(gw, baresip_factory, "goip-01")
    yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield poll_until(reactor, lambda: gw.states(1) == ["ACTIVE"], 5)
    for digit in "12125550190#":
        phone.command("sndcode", digit)
        yield defer_sleep(0.25)
    yield poll_until(reactor, lambda: gw.network.active_calls(), timeout=10)
    yield poll_until(reactor, lambda: "CONNECTED" in gw.states(1), timeout=10)
    phone.command("hangup")
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 10)
    rows = yield gw.cdrs.recent()
    assert rows[0]["two_stage"] == 1 and rows[0]["callee_after"] == "12125550190"
    assert gw.states(1)[:3] == ["ACTIVE", "DIALING", "ALERTING"]


def dtmf_wav(path, digits, lead_ms=2500):
    import wave

    from goip_tw.media.dtmf import generate

    pcm = bytes(16 * lead_ms)
    for d in digits:
        pcm += generate(d, 120) + bytes(16 * 120)
    pcm += bytes(16 * 20000)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return str(path)


@pytest_twisted.inlineCallbacks
def test_two_stage_outgoing_inband(gateway_factory, baresip_factory, tmp_path):
    """Item 3 with F-427 in-band DTMF: the digits are tones in baresip's audio."""
    holder = {}
    gw = yield gateway_factory(media=media_for(holder, "inband"), dtmf_mode="inband")
    holder["gw"] = gw
    phone = yield alice_dials(gw, baresip_factory, "goip-01",
                              audio_file=dtmf_wav(tmp_path / "digits.wav", "12125550190#"))
    yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield poll_until(reactor, lambda: gw.network.active_calls(), timeout=15)
    phone.command("hangup")
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 10)
    rows = yield gw.cdrs.recent()
    assert rows[0]["two_stage"] == 1 and rows[0]["callee_after"] == "12125550190"


@pytest_twisted.inlineCallbacks
def test_two_stage_incoming(gateway_factory, baresip_factory):
    """Item 2, empty forward number: the gateway answers the mobile caller, who keys
    9101# (module DTMF detection); dial rules 9:-9 (F-464) make it 101, which
    Kamailio routes to baresip (auto-answer)."""
    holder = {}
    gw = yield gateway_factory(CallsConfig(lines=(LineCalls(
        incoming_dial_rules="9:-9", cid_mode="off"),)), media=media_for(holder))
    holder["gw"] = gw
    bob = baresip_factory("101", registrar=gw.kamailio.address, password="bobpass")
    yield poll_until(reactor, lambda: gw.kamailio.contacts("s:101"), timeout=10)
    caller = gw.network.add_remote_phone("+12125550155")
    caller.dial(gw.modems[0].sim.own_number)
    yield poll_until(reactor, lambda: gw.states(1) == ["ACTIVE"], 10)
    yield poll_until(reactor, lambda: [c for c in gw.network.active_calls()
                                       if c.state == "active"], 5)
    caller.send_dtmf("9101#")
    yield bob.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    assert gw.states(1) == ["ACTIVE", "INCOMING", "CONNECTED"]
    caller.hangup()
    yield bob.wait_event(reactor, "CALL_CLOSED", timeout=10)
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 5)
    rows = yield gw.cdrs.recent()
    assert rows[0]["two_stage"] == 1
    assert (rows[0]["callee_before"], rows[0]["callee_after"]) == ("9101", "101")


@pytest.mark.parametrize("mode,ringing,progress", [
    ("color_fake", True, True), ("color", False, True), ("fake", True, False)])
@pytest_twisted.inlineCallbacks
def test_ringback_modes_seen_by_baresip(gateway_factory, baresip_factory, mode, ringing,
                                        progress):
    """F-422: 180 at once and/or 183 with early media when the remote phone rings."""
    holder = {}
    gw = yield gateway_factory(CallsConfig(ringback=mode), media=media_for(holder))
    holder["gw"] = gw
    gw.network.add_remote_phone("+12125550177", answer_after=3.0)
    phone = yield alice_dials(gw, baresip_factory, "12125550177")
    yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    kinds = [e.get("type") for e in phone.events]
    assert ("CALL_RINGING" in kinds) == ringing, kinds
    assert ("CALL_PROGRESS" in kinds) == progress, kinds
    if ringing and progress:
        assert kinds.index("CALL_RINGING") < kinds.index("CALL_PROGRESS")
    phone.command("hangup")
    yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 10)


@pytest.mark.parametrize("cid_mode,expect", [
    ("off", {"from": "goip-01", "rpid": None, "pai": None}),
    ("from", {"from": "+12125550155", "rpid": None, "pai": None}),
    ("rpid", {"from": "goip-01", "rpid": "+12125550155", "pai": None}),
    ("pai", {"from": "goip-01", "rpid": None, "pai": "+12125550155"}),
])
@pytest_twisted.inlineCallbacks
def test_incoming_caller_id_on_the_wire(gateway_factory, cid_mode, expect):
    """F-461 (and our P-Asserted-Identity): the INVITE the gateway sends for a mobile
    caller, as a SIP endpoint on 127.0.0.1 receives it."""
    from twisted.internet.protocol import DatagramProtocol

    from goip_tw.sip.message import parse_message

    class Sink(DatagramProtocol):
        invites = []

        def datagramReceived(self, data, addr):
            if data.startswith(b"INVITE"):
                self.invites.append(parse_message(data))

    sink = Sink()
    port = reactor.listenUDP(0, sink, interface="127.0.0.1")
    try:
        gw = yield gateway_factory(CallsConfig(lines=(LineCalls(
            incoming_forward=f"bob@127.0.0.1:{port.getHost().port}", cid_mode=cid_mode),)))
        caller = gw.network.add_remote_phone("+12125550155")
        caller.dial(gw.modems[0].sim.own_number)
        yield poll_until(reactor, lambda: sink.invites, timeout=20)
        invite = sink.invites[0]
        h = invite.headers
        wire = str(dict(h.items())) if hasattr(h, "items") else repr(invite)
        assert expect["from"] in h.get("from"), wire
        for name, key in (("remote-party-id", "rpid"), ("p-asserted-identity", "pai")):
            value = h.get(name)
            if expect[key] is None:
                assert value is None, (name, value, wire)
            else:
                assert value and expect[key] in value, (name, value, wire)
        caller.hangup()
        yield poll_until(reactor, lambda: not gw.ctl.calls and not gw.ctl.pending_cdrs, 10)
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_incoming_tones_both_ways(gateway_factory, baresip_factory):
    """Incoming call with audio: the mobile caller's 1000 Hz reaches baresip, and
    baresip's 440 Hz reaches the mobile caller."""
    holder = {}
    bob = baresip_factory("bob")
    gw = yield gateway_factory(CallsConfig(lines=(LineCalls(
        incoming_forward=f"bob@127.0.0.1:{bob.sip_port}"),)), media=media_for(holder))
    holder["gw"] = gw
    caller = gw.network.add_remote_phone("+12125550155", audio="tone:1000")
    caller.dial(gw.modems[0].sim.own_number)
    yield bob.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
    yield defer_sleep(4)
    heard = bytes(caller.heard)
    caller.hangup()
    yield bob.wait_event(reactor, "CALL_CLOSED", timeout=10)
    freq, seconds, rms = dominant_pcm(heard)
    assert seconds > 1 and rms > 300 and freq == 440, (freq, seconds, rms)
    dumps = glob.glob(str(bob.workdir / "dump-*-dec.wav"))
    assert dumps, bob.log_text()[-2000:]
    freq, seconds, rms = dominant(dumps[0])
    assert seconds > 1 and rms > 300 and freq == 1000, (freq, seconds, rms)


@pytest_twisted.inlineCallbacks
def test_two_stage_outgoing_sip_info(gateway_factory):
    """Item 3 with F-427 SIP INFO: a UAC (our own SIP stack, as no Debian peer here
    sends INFO DTMF) calls the gateway's number and keys the digits as INFO."""
    from goip_tw.config.sections.voip import VoipConfig as Voip
    from goip_tw.sip import ua
    from goip_tw.sip.service import SipService

    holder = {}
    gw = yield gateway_factory(media=media_for(holder, "info"), dtmf_mode="info",
                               outgoing_auth="none")
    holder["gw"] = gw
    uac = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=free_port(),
                                        tcp=False, keepalive_mode="off"),
                     Voip(outgoing_auth="none"), 1)
    uac.startService()
    events = []
    try:
        sdp = (b"v=0\r\no=carol 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
               b"t=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" % free_port())
        leg = uac.place_call(f"goip-01@127.0.0.1:{gw.sip.port}", caller="carol",
                             local_sdp=sdp)
        leg.listener = events.append
        yield poll_until(reactor, lambda: any(isinstance(e, ua.Answered) for e in events), 10)
        for digit in "12125550190#":
            leg.send_dtmf(digit)
            yield defer_sleep(0.1)
        yield poll_until(reactor, lambda: gw.network.active_calls(), timeout=10)
        leg.hangup()
        yield poll_until(reactor, lambda: not gw.ctl.pending_cdrs and not gw.ctl.calls, 10)
        rows = yield gw.cdrs.recent()
        assert rows[0]["two_stage"] == 1 and rows[0]["callee_after"] == "12125550190"
        assert rows[0]["caller_before"] == "carol"
    finally:
        yield uac.stopService()
