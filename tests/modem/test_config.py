"""[modems] config section: every bad value gives an error naming the key."""

import pytest

from goip_tw.config import schema
from goip_tw.config.sections.modems import ModemsConfig


def build(lines, **top):
    errors = []
    cfg = schema.build_section(ModemsConfig, dict(top, lines=lines), "modems", "goip.toml", errors)
    return cfg, [(e.key, e.reason) for e in errors]


def test_good_lines():
    cfg, errors = build([
        {"port": "/dev/serial/by-id/usb-Quectel_EC25-if02-port0", "pin": "1234",
         "operator": "46000", "sim_switch": "qdsim", "sim_slots": 2},
        {"port": "imei:866123456789012", "driver": "simcom"},
        {"port": "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.2-port0",
         "sim_switch": "gpio", "gpio_lines": [17, 18]},
    ])
    assert errors == []
    assert [ln.port for ln in cfg.lines][1] == "imei:866123456789012"


@pytest.mark.parametrize("line, key, reason", [
    ({"port": "/dev/ttyUSB2"}, "modems.lines[0].port", "renumbered"),
    ({"port": "ttyUSB2"}, "modems.lines[0].port", "absolute"),
    ({"port": "imei:123"}, "modems.lines[0].port", "15 digits"),
    ({"port": "/dev/x", "pin": "12a4"}, "modems.lines[0].pin", "4-8 digits"),
    ({"port": "/dev/x", "operator": "46000;"}, "modems.lines[0].operator", "MCC-MNC"),
    ({"port": "/dev/x", "driver": "nokia"}, "modems.lines[0].driver", "one of"),
    ({"port": "/dev/x", "sim_slots": 5}, "modems.lines[0].sim_slots", "at most"),
    ({"port": "/dev/x", "gpio_lines": [1, 2, 3]}, "modems.lines[0].gpio_lines", "at most 2"),
    ({"port": "/dev/x", "sim_switch": "gpio"}, "modems.lines[0]", "gpio_lines"),
    ({}, "modems.lines[0]", "port is required"),
])
def test_bad_values_name_the_key(line, key, reason):
    _, errors = build([line])
    assert any(k == key and reason in r for k, r in errors), errors
