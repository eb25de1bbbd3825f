from goip_tw.config.schema import ConfigError, build_section
from goip_tw.config.sections.media import MediaConfig


def build(data):
    errors: list[ConfigError] = []
    obj = build_section(MediaConfig, data, "media", "goip.toml", errors)
    return obj, [str(e) for e in errors]


def test_defaults_follow_f440():
    cfg, errors = build({})
    assert errors == []
    assert (cfg.rtp_port_min, cfg.rtp_port_max, cfg.ptime) == (16384, 32768, 20)
    assert cfg.dtmf_mode == "rfc4733" and cfg.srtp == "off"


def test_every_bad_field_is_named():
    _, errors = build({"codecs": ["PCMA", "OPUS"], "ptime": 25, "srtp": "maybe",
                       "custom_dial_tone": "1,0,100", "rtp_port_min": 80})
    text = "\n".join(errors)
    for key in ("media.codecs", "media.ptime", "media.srtp", "media.custom_dial_tone",
                "media.rtp_port_min"):
        assert key in text
    assert "OPUS" in text and "16 comma-separated" in text


def test_port_range_must_hold_a_pair():
    _, errors = build({"rtp_port_min": 20000, "rtp_port_max": 20001})
    assert any("rtp_port_max" in e for e in errors)


def test_custom_tone_accepted():
    cfg, errors = build({"custom_busy_tone": "1,0,350,350,0,0,0,0,450,0,0,0,13,0,0,0",
                         "codecs": ["PCMU"]})
    assert errors == [] and cfg.codecs == ("PCMU",)
