"""The ``[sip]`` config section: defaults, ranges and cross-field checks name the key."""

from __future__ import annotations

from goip_tw.config.schema import build_section, to_dict
from goip_tw.config.sections.sip import SipConfig
from goip_tw.sip.transaction import Timers


def build(data):
    errors = []
    cfg = build_section(SipConfig, data, "sip", "goip.toml", errors)
    return cfg, errors


def test_defaults_round_trip_and_feed_the_timers():
    cfg, errors = build(to_dict(SipConfig()))
    assert errors == [] and cfg == SipConfig()
    t = Timers.from_config(SipConfig(t1=0.25, nict_timeout=5.0))
    assert (t.t1, t.f, t.b, t.h) == (0.25, 5.0, 32.0, 16.0)


def test_bad_values_are_reported_with_their_keys():
    _, errors = build({"local_port": 70000, "random_port_range": "5000",
                       "reply_path": "nowhere", "dscp": 64, "t1": "fast",
                       "keepalive_mode": "ping"})
    keys = sorted(e.key for e in errors)
    assert keys == ["sip.dscp", "sip.keepalive_mode", "sip.local_port",
                    "sip.random_port_range", "sip.reply_path", "sip.t1"]


def test_t2_below_t1_is_refused():
    _, errors = build({"t1": 5.0, "t2": 2.0})
    assert errors and "t2" in errors[0].reason
