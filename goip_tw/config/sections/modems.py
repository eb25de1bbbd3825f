"""Modem / line settings (SPEC F-101..F-105, F-4A0, F-1602; issue 4).

``[[modems.lines]]`` lists the modules in line order.  With no lines configured the
gateway runs on the simulator's modules (F-106).  A line's ``port`` must be a stable
name (``/dev/serial/by-id/...``, a USB path link, or the simulator's link), never a
``/dev/ttyUSBn`` number, which changes after every modem reset (F-103).
"""

from __future__ import annotations

import re

import attrs

from goip_tw.config.schema import section, setting

DRIVERS = ("auto", "generic", "quectel", "quectel-uac", "simcom", "huawei")
SIM_SWITCHES = ("none", "simulator", "qdsim", "gpio")


def _check_port(value: str) -> None:
    if value.startswith("imei:"):
        if not re.fullmatch(r"imei:[0-9]{15}", value):
            raise ValueError(f"an IMEI key is imei: and 15 digits; got {value!r}")
        return
    if not value.startswith("/"):
        raise ValueError(f"port must be an absolute device path or imei:<IMEI>; got {value!r}")
    if re.fullmatch(r"/dev/tty(USB|ACM)\d+", value):
        raise ValueError(f"{value} is renumbered on every reset; use /dev/serial/by-id/... (F-103)")


def _check_voice(value: str) -> None:
    if value:
        _check_port(value)


def _check_pin(value: str) -> None:
    if value and not re.fullmatch(r"[0-9]{4,8}", value):
        raise ValueError("PIN must be 4-8 digits")


def _check_operator(value: str) -> None:
    if value and not re.fullmatch(r"[0-9]{5,6}", value):
        raise ValueError(f"operator must be empty (automatic) or an MCC-MNC like 46000; got {value!r}")


def _check_gpio_lines(value) -> None:
    if len(value) > 2:
        raise ValueError("at most 2 GPIO lines (4 slots)")
    for v in value:
        if not 0 <= v <= 1023:
            raise ValueError(f"GPIO line {v} out of range")


@attrs.frozen
class ModemLineConfig:
    """One module = one line (F-101)."""

    port: str = setting("", label="AT port", check=_check_port, feature="F-103",
                        help="Stable path, e.g. /dev/serial/by-id/usb-Quectel_EC25-if02-port0, "
                             "or imei:<IMEI> to find the module among modems.scan_dir.")
    voice_port: str = setting("", label="Voice (PCM) port", check=_check_voice,
                              help="e.g. the Quectel if01 port; empty = no voice.")
    name: str = setting("", label="Line name")
    enabled: bool = setting(True, label="Line enabled", feature="F-101")
    driver: str = setting("auto", label="Module driver", choices=DRIVERS,
                          help="auto = detect from AT+CGMI/AT+CGMM.")
    baudrate: int = setting(115200, label="Baud rate", min=1200, max=4000000)
    pin: str = setting("", label="SIM PIN", secret=True, check=_check_pin, feature="F-105",
                       help="Sent once; a rejected PIN is never retried automatically.")
    operator: str = setting("", label="Operator (MCC-MNC)", check=_check_operator,
                            feature="F-4A0", help="Empty = automatic selection.")
    volte: str = setting("keep", label="VoLTE", choices=("keep", "on", "off"))
    sim_slots: int = setting(1, label="SIM slots", min=1, max=4, feature="F-104")
    sim_switch: str = setting("none", label="SIM switch", choices=SIM_SWITCHES, feature="F-104")
    gpio_chip: str = setting("gpiochip0", label="GPIO chip", feature="F-104")
    gpio_lines: tuple[int, ...] = setting((), label="GPIO lines (slot bits, LSB first)",
                                          check=_check_gpio_lines, feature="F-104")
    mic_gain: int = setting(-1, label="Microphone gain", min=-1, max=65535, feature="F-1602",
                            help="-1 = module default.")
    speaker_gain: int = setting(-1, label="Speaker gain", min=-1, max=65535, feature="F-1602",
                                help="-1 = module default.")

    def __attrs_post_init__(self):
        if not self.port:
            raise ValueError("port is required (the module's AT port, a stable path)")
        if self.sim_switch == "gpio" and not self.gpio_lines:
            raise ValueError("sim_switch = gpio needs gpio_lines")


@section("modems")
class ModemsConfig:
    lines: tuple[ModemLineConfig, ...] = setting((), label="Lines", feature="F-101",
                                                 help="Empty = the simulator's modules.")
    watchdog_interval: float = setting(30.0, label="Watchdog probe interval", unit="s",
                                       min=1, max=3600)
    registration_poll: float = setting(30.0, label="Registration/signal poll", unit="s",
                                       min=1, max=3600)
    sms_poll: float = setting(60.0, label="SMS store poll", unit="s", min=5, max=3600)
    reassembly_timeout: float = setting(300.0, label="Long SMS reassembly timeout", unit="s",
                                        min=10, max=86400)
    replug_poll: float = setting(5.0, label="Absent module re-check", unit="s", min=0.1,
                                 max=600, help="Fallback when inotify misses a replug.")
    scan_dir: str = setting("/dev/serial/by-id", label="Where imei: lines look for modules",
                            feature="F-103")
