"""Voice calls through a real pty: call progress, causes, DTMF, call waiting,
and PCM audio on the voice pty."""

import math
import struct

import pytest

from goip_tw.simulator.audio import dominant_frequency, rms

from .conftest import ready as conftest_ready, pump


def ready(sim, modules=2, **kw):
    return conftest_ready(sim, modules, **kw)


def number(s, i):
    return s.network.modules[i].sim.msisdn


def tone(freq=440, amplitude=8000, frames=1):
    samples = [int(amplitude * math.sin(2 * math.pi * freq * i / 8000))
               for i in range(160 * frames)]
    return struct.pack(f"<{len(samples)}h", *samples)


@pytest.mark.parametrize("behaviour, final, cause", [
    ({"busy": True}, "BUSY", 17),
    ({"answer_after": None}, "NO ANSWER", 19),
    ({"reject": True}, "NO CARRIER", 21),
    ({"unreachable": True}, "NO CARRIER", 20),
])
def test_call_progress_failures_and_ceer(sim, behaviour, final, cause):
    s, (a, _) = ready(sim)
    s.network.add_remote_phone("+15551000", **behaviour)
    assert a.lines("ATD+15551000;") == ["OK"]
    s.settle(62)
    assert final in a.take()
    assert a.lines("AT+CEER")[0].startswith(f'+CEER: "CC INFO",{cause},')
    assert a.lines("AT+CLCC") == ["OK"]


def test_unassigned_number(sim):
    s, (a, _) = ready(sim)
    a.cmd("ATD+19998887777;")
    s.settle(2)
    assert "NO CARRIER" in a.take()
    assert a.lines("AT+CEER")[0] == '+CEER: "CC INFO",1,"Unassigned (unallocated) number"'


def test_answer_then_remote_hangup(sim):
    s, (a, _) = ready(sim)
    s.network.add_remote_phone("+15551001", answer_after=2, hangup_after=5)
    a.cmd("AT+COLP=1")
    a.cmd("ATD+15551001;")
    s.settle(1)
    assert a.lines("AT+CLCC") == ['+CLCC: 1,0,3,0,0,"+15551001",145', "OK"]  # alerting
    s.settle(2)
    assert '+COLP: "+15551001",145' in a.take()
    assert a.lines("AT+CLCC") == ['+CLCC: 1,0,0,0,0,"+15551001",145', "OK"]  # active
    s.settle(5)
    assert "NO CARRIER" in a.take()
    assert a.lines("AT+CEER")[0] == '+CEER: "CC INFO",16,"Normal call clearing"'
    record = s.network.calls[-1].record()
    assert record["answered"] is not None and record["cause"] == 16


def test_incoming_call_ring_clip_answer_and_local_hangup(sim):
    s, (a, _) = ready(sim)
    phone = s.network.add_remote_phone("+15551002")
    a.cmd("AT+CLIP=1")
    call = phone.dial(number(s, 0))
    s.settle(1)
    urc = a.take()
    assert "RING" in urc and '+CLIP: "+15551002",145,"",0,"",0' in urc
    assert a.lines("AT+CLCC") == ['+CLCC: 1,1,4,0,0,"+15551002",145', "OK"]
    s.settle(3.1)
    assert a.take().count("RING") == 1  # repeated every 3 s
    assert a.lines("ATA") == ["OK"]
    assert call.state == "active"
    assert a.lines("ATH") == ["OK"]
    assert call.state == "ended" and call.cause[0] == 16
    assert a.lines("ATA") == ["NO CARRIER"]


def test_rejecting_incoming_with_qhup_gives_the_caller_busy(sim):
    s, (a, _) = ready(sim)
    phone = s.network.add_remote_phone("+15551003")
    call = phone.dial(number(s, 0))
    s.settle(1)
    assert a.lines("AT+QHUP=17") == ["OK"]
    assert call.cause == (17, "User busy")


def test_sim_to_sim_call(sim):
    s, (a, b) = ready(sim)
    b.cmd("AT+CLIP=1")
    a.cmd(f"ATD{number(s, 1)};")
    s.settle(1)
    assert f'+CLIP: "{number(s, 0)}"' in b.take()
    b.cmd("ATA")
    assert a.lines("AT+CLCC")[0].startswith("+CLCC: 1,0,0,")
    a.cmd("AT+CHUP")
    s.settle(0.2)
    assert "NO CARRIER" in b.take()


def test_dtmf_both_ways(sim):
    s, (a, b) = ready(sim, dialects=["quectel", "simcom"])
    phone = s.network.add_remote_phone("+15551004", answer_after=0.5, dtmf="12#")
    a.cmd("AT+QTONEDET=1")
    a.cmd("ATD+15551004;")
    s.settle(3)
    urcs = a.take()
    assert [ln for ln in urcs.split("\r\n") if ln.startswith("+QTONEDET")] == [
        "+QTONEDET: 49", "+QTONEDET: 50", "+QTONEDET: 35"]
    assert a.lines("AT+VTS=5") == ["OK"]
    assert a.lines('AT+VTS="9"') == ["OK"]
    assert a.lines("AT+VTS=X") == ["+CME ERROR: 50"]
    assert phone.received_dtmf == ["5", "9"]
    a.cmd("ATH")
    assert a.lines("AT+VTS=1") == ["+CME ERROR: 3"]
    # SIMCom reports received digits as +RXDTMF.
    simcom_phone = s.network.add_remote_phone("+15551005", answer_after=0.5, dtmf="7")
    b.cmd("AT+DDET=1")
    b.cmd("ATD+15551005;")
    s.settle(3)
    assert "+RXDTMF: 7" in b.take()
    assert simcom_phone.received_dtmf == []


def test_call_waiting_hold_and_swap(sim):
    s, (a, _) = ready(sim)
    first = s.network.add_remote_phone("+15551006")
    second = s.network.add_remote_phone("+15551007")
    a.cmd("AT+CCWA=1,1")
    c1 = first.dial(number(s, 0))
    s.settle(1)
    a.cmd("ATA")
    c2 = second.dial(number(s, 0))
    s.settle(1)
    assert '+CCWA: "+15551007",145,1' in a.take()
    assert a.lines("AT+CLCC") == ['+CLCC: 1,1,0,0,0,"+15551006",145',
                                  '+CLCC: 2,1,5,0,0,"+15551007",145', "OK"]
    a.cmd("AT+CHLD=2")  # hold the first, answer the waiting one
    assert c2.state == "active"
    assert a.lines("AT+CLCC")[:2] == ['+CLCC: 1,1,1,0,0,"+15551006",145',
                                      '+CLCC: 2,1,0,0,0,"+15551007",145']
    a.cmd("AT+CHLD=2")  # swap
    assert a.lines("AT+CLCC")[:2] == ['+CLCC: 1,1,0,0,0,"+15551006",145',
                                      '+CLCC: 2,1,1,0,0,"+15551007",145']
    a.cmd("AT+CHLD=1")  # release the active one, resume the held
    assert c1.state == "ended" and c2.state == "active"
    assert a.lines("AT+CLCC") == ['+CLCC: 2,1,0,0,0,"+15551007",145', "OK"]
    a.cmd("AT+CHLD=12")
    assert c2.state == "ended"


def test_busy_without_call_waiting(sim):
    s, (a, _) = ready(sim)
    first = s.network.add_remote_phone("+15551008")
    second = s.network.add_remote_phone("+15551009")
    first.dial(number(s, 0))
    s.settle(1)
    a.cmd("ATA")
    c2 = second.dial(number(s, 0))
    s.settle(1)
    assert c2.cause[0] == 17


def test_vendor_call_state_urcs(sim):
    s, (a, b) = ready(sim, dialects=["quectel", "simcom"])
    s.network.add_remote_phone("+15551010", answer_after=1, hangup_after=1)
    s.network.add_remote_phone("+15551016", answer_after=1, hangup_after=1)
    a.cmd('AT+QINDCFG="ccinfo",1')
    b.cmd("AT+CLCC=1")
    a_urcs = a.cmd("ATD+15551010;")
    b_urcs = b.cmd("ATD+15551016;")
    s.settle(0.2)
    a_urcs += a.take()
    b_urcs += b.take()
    s.settle(4)
    a_urcs += a.take()
    b_urcs += b.take()
    assert '+QIND: "ccinfo",1,0,2,0,0,"+15551010",145' in a_urcs  # dialing
    assert '+QIND: "ccinfo",1,0,0,0,0,"+15551010",145' in a_urcs  # active
    assert '+CLCC: 1,0,0,0,0,"+15551016",145' in b_urcs
    assert "VOICE CALL: BEGIN" in b_urcs and "VOICE CALL: END: 000001" in b_urcs


def test_no_network_no_call(sim):
    s, (a, _) = ready(sim)
    s.network.set_coverage(s.network.modules[0], False)
    assert a.lines("ATD+15551011;") == ["NO CARRIER"]
    assert a.lines("ATD+15551011") == ["NO CARRIER"]  # data call


def test_call_drops_when_coverage_is_lost(sim):
    s, (a, _) = ready(sim)
    s.network.add_remote_phone("+15551012", answer_after=0.5)
    a.cmd("ATD+15551012;")
    s.settle(1.5)
    s.network.set_coverage(s.network.modules[0], False)
    assert "NO CARRIER" in a.take()
    assert a.lines("AT+CEER")[0].startswith('+CEER: "CC INFO",47,')


def play(s, voice_client, frame, ticks):
    got = b""
    for _ in range(ticks):
        voice_client.write(frame)
        s.reactor.advance(0.02)
        pump(s.reactor)
        got += voice_client.read()
    return got


def test_echo_phone_returns_audio_on_the_voice_pty(sim):
    s, (a, _) = ready(sim)
    s.network.add_demo_phones()
    voice = s.client(0, "audio")
    a.cmd("AT+QPCMV=1,0")
    a.cmd(f"ATD{s.network.echo_number};")
    s.settle(2)
    assert a.lines("AT+CLCC")[0].startswith("+CLCC: 1,0,0,")
    voice.read()
    got = play(s, voice, tone(440), 50)
    assert len(got) >= 40 * 320
    assert rms(got[-4000:]) > 3000
    assert abs(dominant_frequency(got[-4000:]) - 440) < 20
    phone = s.network.phone(s.network.echo_number)
    assert phone.frames_heard >= 50
    a.cmd("ATH")
    assert s.network.ticker.running is False or s.network.active_calls() == []
    s.reactor.advance(0.1)
    assert not s.network.ticker.running


def test_tone_phone_and_no_audio_without_pcm(sim):
    s, (a, b) = ready(sim, dialects=["quectel", "simcom"])
    s.network.add_remote_phone("+15551013", answer_after=0.5, audio="tone:1000")
    voice_b = s.client(1, "audio")
    b.cmd("ATD+15551013;")
    s.settle(1)
    assert play(s, voice_b, bytes(320), 10) == b""  # PCM port not enabled yet
    b.cmd("AT+CPCMREG=1")
    got = play(s, voice_b, bytes(320), 25)
    assert abs(dominant_frequency(got) - 1000) < 30


def test_sim_to_sim_audio(sim):
    s, (a, b) = ready(sim)
    va, vb = s.client(0, "audio"), s.client(1, "audio")
    for c in (a, b):
        c.cmd("AT+QPCMV=1,0")
    a.cmd(f"ATD{number(s, 1)};")
    s.settle(1)
    b.cmd("ATA")
    got_b = b""
    for _ in range(30):
        va.write(tone(600))
        s.reactor.advance(0.02)
        pump(s.reactor)
        got_b += vb.read()
        va.read()
    assert abs(dominant_frequency(got_b[-3200:]) - 600) < 25


def test_wav_phone(sim, tmp_path):
    import wave

    path = tmp_path / "t.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone(800, frames=10))
    s, (a, _) = ready(sim)
    s.network.add_remote_phone("+15551014", answer_after=0.2, audio=f"wav:{path}")
    voice = s.client(0, "audio")
    a.cmd("AT+QPCMV=1,0")
    a.cmd("ATD+15551014;")
    s.settle(1)
    voice.read()  # drop the ringback heard before the answer
    got = play(s, voice, bytes(320), 25)
    assert abs(dominant_frequency(got) - 800) < 25
    with pytest.raises(ValueError):
        s.network.add_remote_phone("+15551015", audio="music")


def test_call_records_are_kept(sim):
    s, (a, _) = ready(sim)
    s.network.add_remote_phone("+15551020", busy=True)
    for _ in range(3):
        a.cmd("ATD+15551020;")
        s.settle(1.5)
    records = s.network.call_records()
    assert [r["cause"] for r in records] == [17, 17, 17]
    assert all(r["callee"] == "+15551020" and r["state"] == "ended" for r in records)


def test_ringback_tone_while_alerting(sim):
    s, (a, _) = ready(sim)
    s.network.add_remote_phone("+15551021", answer_after=None)
    voice = s.client(0, "audio")
    a.cmd("AT+QPCMV=1,0")
    a.cmd("ATD+15551021;")
    s.settle(0.6)  # the callee is alerted after 0.5 s
    voice.read()
    heard = b""
    for _ in range(250):  # one 5 s cadence: 1 s tone, 4 s silence
        s.reactor.advance(0.02)
        pump(s.reactor)
        heard += voice.read()
    assert len(heard) >= 240 * 320
    frames = [heard[i:i + 320] for i in range(0, len(heard) - 319, 320)]
    loud = [f for f in frames if rms(f) > 1000]
    assert 40 <= len(loud) <= 60
    assert abs(dominant_frequency(b"".join(loud)) - 425) < 20
    a.cmd("ATH")
    s.reactor.advance(0.1)
    assert not s.network.ticker.running
