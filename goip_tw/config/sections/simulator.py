"""Simulator settings (F-106, issue 3).

With ``enabled = "auto"`` the simulator runs when no ``[[modems.lines]]`` are
configured, so a first ``twistd -n goip`` has four working lines at once.
"""

from __future__ import annotations

import re

from goip_tw.config.schema import section, setting


def _check_number(value: str) -> None:
    if value and not re.fullmatch(r"\+?[0-9]{3,20}", value):
        raise ValueError(f"must be a phone number like +12125550190; got {value!r}")


def _check_pin(value: str) -> None:
    if value and not re.fullmatch(r"[0-9]{4,8}", value):
        raise ValueError("PIN must be empty or 4-8 digits")


@section("simulator")
class SimulatorSection:
    enabled: str = setting("auto", label="Simulated modules", choices=("auto", "on", "off"),
                           feature="F-106",
                           help="auto = run when no modem lines are configured.")
    modules: int = setting(4, label="Simulated modules", min=1, max=32, feature="F-106")
    slots: int = setting(4, label="SIM slots per simulated module", min=1, max=4,
                         feature="F-104")
    dialect: str = setting("quectel", label="AT dialect",
                           choices=("quectel", "simcom", "huawei", "mixed"),
                           help="quectel = EC25, simcom = SIM7600, huawei = ME909s; "
                                "mixed alternates Quectel EC25 and SIMCom SIM7600.")
    sim_pin: str = setting("", label="PIN of the simulated SIMs", check=_check_pin,
                           secret=True, help="Empty = PIN check disabled.")
    reg_delay: float = setting(2.0, label="Registration delay", unit="s", min=0.0, max=120.0,
                               help="Time from SIM ready to network registration.")
    link_dir: str = setting("", label="Device link directory",
                            help="Stable moduleN-at / moduleN-audio links; "
                                 "empty = <data-dir>/sim-devices.")
    ringback: bool = setting(True, label="In-band ringback", feature="F-422",
                             help="Play a 425 Hz ringback to the caller's voice port while "
                                  "the callee rings (early media).")
    control_port: int = setting(-1, label="Control API port", min=-1, max=65535,
                                help="JSON control on 127.0.0.1; -1 = off, 0 = any free port.")
    echo_number: str = setting("+12125550190", label="Echo test number",
                               check=_check_number,
                               help="A remote phone that answers and echoes audio.")
    sms_echo_number: str = setting("+12125550191", label="SMS echo number",
                                   check=_check_number,
                                   help="A remote phone that replies with the same text.")
