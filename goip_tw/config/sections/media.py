"""Media settings (SPEC F-440 RTP/VAD/timeout/codecs, F-427 DTMF, F-404 tones,
F-1602 gain, F-208 SRTP)."""

from __future__ import annotations

from goip_tw.config.schema import section, setting

CODECS = ("PCMU", "PCMA", "G729")
DTMF_MODES = ("rfc4733", "info", "inband")
TONE_PRESETS = ("CN", "US", "UK", "EU")
SRTP_MODES = ("off", "optional", "mandatory")


def _check_codecs(value) -> None:
    seen = set()
    for c in value:
        if c not in CODECS:
            raise ValueError(f"unknown codec {c!r}; known: {', '.join(CODECS)}")
        if c in seen:
            raise ValueError(f"codec {c!r} listed twice")
        seen.add(c)
    if not value:
        raise ValueError("at least one codec is required")


def _check_tone(value: str) -> None:
    if value:
        from goip_tw.media.tones import parse_tone
        parse_tone(value)


@section("media")
class MediaConfig:
    """RTP and voice processing shared by all lines."""

    rtp_port_min: int = setting(16384, label="RTP port range start", min=1024, max=65534,
                                feature="F-440")
    rtp_port_max: int = setting(32768, label="RTP port range end", min=1025, max=65535,
                                feature="F-440")
    ptime: int = setting(20, label="RTP packet time", unit="ms", choices=(10, 20, 30, 40, 60),
                         help="Raised to the codec's minimum.", feature="F-440")
    rtp_timeout: int = setting(60, label="RTP timeout", unit="s", min=0, max=3600,
                               help="No RTP for this long ends the call (0 = never).",
                               feature="F-440")
    vad: bool = setting(False, label="VAD / silence suppression",
                        help="Send no packets while the mobile side is silent.",
                        feature="F-440")
    codecs: tuple[str, ...] = setting(("PCMA", "PCMU", "G729"), label="Codec order",
                                      check=_check_codecs, feature="F-440")
    dscp: int = setting(46, label="Media QoS (DSCP)", min=0, max=63, feature="F-440")
    public_address: str = setting("", label="Public media address",
                                  help="Address written into SDP behind port forwarding/DMZ.",
                                  feature="F-440")
    srtp: str = setting("off", label="Media encryption (SRTP)", choices=SRTP_MODES,
                        feature="F-208")
    dtmf_mode: str = setting("rfc4733", label="DTMF mode", choices=DTMF_MODES, feature="F-427")
    dtmf_payload_type: int = setting(101, label="RFC 4733 payload type", min=96, max=127,
                                     feature="F-427")
    tone_standard: str = setting("CN", label="Tone standard", choices=TONE_PRESETS,
                                 feature="F-404")
    custom_dial_tone: str = setting("", label="Custom dial tone (Appendix B syntax)",
                                    check=_check_tone, feature="F-1601")
    custom_ringback_tone: str = setting("", label="Custom ringback tone", check=_check_tone,
                                        feature="F-1601")
    custom_busy_tone: str = setting("", label="Custom busy tone", check=_check_tone,
                                    feature="F-1601")
    jitter_min_ms: int = setting(20, label="Jitter buffer minimum delay", unit="ms", min=0,
                                 max=500)
    jitter_max_ms: int = setting(200, label="Jitter buffer maximum delay", unit="ms", min=20,
                                 max=1000)
    input_gain_db: tuple[float, ...] = setting(
        (), label="Input gain per line (module to RTP)", unit="dB",
        help="Line n uses entry n-1; missing entries mean 0 dB.", feature="F-1602")
    output_gain_db: tuple[float, ...] = setting(
        (), label="Output gain per line (RTP to module)", unit="dB", feature="F-1602")
    one_way_audio_s: int = setting(10, label="One-way audio alarm after", unit="s", min=2,
                                   max=600)

    def __attrs_post_init__(self):
        if self.rtp_port_max - self.rtp_port_min < 3:
            raise ValueError("media.rtp_port_max must be at least rtp_port_min + 3")
