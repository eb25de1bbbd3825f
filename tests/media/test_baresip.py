"""A real call with baresip (Debian): it dials us, our RTP stack carries a tone each way.

baresip plays a 440 Hz WAV (aufile) and records what it hears (sndfile, dump-*-dec.wav);
our side bridges a simulated line that plays 1000 Hz and records what RTP brings.
See /work/shared/PEERS.md for the baresip specifics.
"""

from __future__ import annotations

import glob
import os
import shutil
import wave

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer, protocol, task

from goip_tw.config.sections.media import MediaConfig
from goip_tw.media.interfaces import FrameQueue
from goip_tw.media.service import MediaService
from tests.peers.peerutil import free_port

from .helpers import goertzel_power, samples, sine
from .sipstub import SipStub

BARESIP = shutil.which("baresip")
CONFIG = os.path.join(os.path.dirname(__file__), "..", "peers", "baresip", "config")

pytestmark = pytest.mark.skipif(BARESIP is None, reason="baresip not installed (apt-get install baresip)")


class Proc(protocol.ProcessProtocol):
    def __init__(self):
        self.ended = defer.Deferred()
        self.out = []

    def outReceived(self, data):
        self.out.append(data)

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


class Leg:
    call_id = "baresip"
    listener = None

    def hangup(self):
        pass


def dominant(pcm, freqs):
    s = samples(pcm)
    return max(freqs, key=lambda f: goertzel_power(s, f))


def write_wav(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2
        data = w.readframes(w.getnframes())
        if w.getnchannels() == 2:
            s = samples(data)[::2]
            data = s.tobytes()
        return data, w.getframerate()


@pytest.mark.parametrize("srtp_mode", ["off", "mandatory"])
@pytest_twisted.inlineCallbacks
def test_baresip_call_carries_tones_both_ways(tmp_path, srtp_mode):
    from twisted.internet import reactor

    # Ports below the kernel's ephemeral range, so no other socket's bind(0) takes
    # one between the probe and the bind (baresip's SIP port + 1 is its TLS port).
    low = free_port(span=101)
    cfg = attrs.evolve(MediaConfig(), rtp_port_min=low, rtp_port_max=low + 100,
                       codecs=("PCMU", "PCMA"), srtp=srtp_mode, rtp_timeout=0)
    line = FrameQueue(max_frames=600, keep_written=1000)
    media = MediaService(reactor, cfg, voice_port_of=lambda n: line, interface="127.0.0.1")
    leg = Leg()
    handles = []
    answers = []

    def on_invite(offer):
        answer = media.local_sdp(leg, offer)
        answers.append(answer)
        handles.append(media.bridge(1, leg))
        return answer

    stub = SipStub(on_invite)
    sip_port = reactor.listenUDP(0, stub, interface="127.0.0.1")
    port = sip_port.getHost().port

    write_wav(str(tmp_path / "tone.wav"), sine(440, 8000, amplitude=8000))
    with open(CONFIG) as f:
        conf = f.read().replace("@DIR@", str(tmp_path)).replace("@SIPPORT@", str(free_port(span=2)))
    (tmp_path / "config").write_text(conf)
    mediaenc = ";mediaenc=srtp-mand" if srtp_mode == "mandatory" else ""
    (tmp_path / "accounts").write_text(
        f"<sip:baresip@127.0.0.1>;regint=0;audio_codecs=PCMU,PCMA{mediaenc}\n")
    line.push(sine(1000, 8000, amplitude=8000)[:600 * 320])

    proc = Proc()
    reactor.spawnProcess(proc, BARESIP,
                         [BARESIP, "-f", str(tmp_path), "-t", "5",
                          "-e", f"/dial sip:gw@127.0.0.1:{port}"],
                         env={"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")})
    try:
        for _ in range(200):  # bounded wait for the call (<= 10 s)
            if proc.ended.called:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
            if handles and not proc.ended.called:
                break
        yield task.deferLater(reactor, 2.5, lambda: None)
        assert handles, b"".join(proc.out).decode(errors="replace")[-2000:]
        stats = handles[0].stop()
        heard_here = b"".join(line.written)
    finally:
        for _ in range(300):  # baresip quits by itself after -t seconds
            if proc.ended.called:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        if not proc.ended.called:
            proc.transport.signalProcess("KILL")
            yield proc.ended
        media.release(leg)
        yield sip_port.stopListening()

    log = b"".join(proc.out).decode(errors="replace")
    assert stats.details["received"] > 50, log[-2000:]
    assert stats.details["srtp_failed"] == 0
    assert (b"a=crypto:" in answers[0]) == (srtp_mode == "mandatory")
    # baresip -> us: 440 Hz arrived on the simulated line
    assert dominant(heard_here[-50 * 320:], (440, 1000)) == 440
    # us -> baresip: 1000 Hz in baresip's decoded recording
    dumps = glob.glob(str(tmp_path / "dump-*-dec.wav"))
    assert dumps, log[-2000:]
    pcm, rate = read_wav(dumps[0])
    assert len(pcm) > rate  # over half a second of audio
    s = samples(pcm)
    tail = s[len(s) // 2:]
    assert max(((f, goertzel_power(tail, f * 8000 / rate)) for f in (440, 1000)),
               key=lambda x: x[1])[0] == 1000
