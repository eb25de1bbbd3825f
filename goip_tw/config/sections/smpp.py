"""SMPP SMSC settings (F-407)."""

from __future__ import annotations

from goip_tw.config.schema import section, setting


def _check_system_id(value: str) -> None:
    if value and (len(value) > 13 or not value.isprintable()):
        raise ValueError("a system ID is 1-13 printable characters (SMPP 3.4 leaves room "
                         "for the 2-digit line suffix of the 1+N IDs)")


def _check_password(value: str) -> None:
    if len(value) > 8 or not value.isprintable():
        raise ValueError("an SMPP 3.4 password is at most 8 printable characters")


@section("smpp")
class SmppConfig:
    enabled: str = setting("auto", label="SMPP SMSC", choices=("auto", "on", "off"),
                           feature="F-407",
                           help="auto: on with the simulated default (demo), else off.")
    port: int = setting(2775, label="SMPP port (0 = any free port)", min=0, max=65535,
                        feature="F-407")
    interface: str = setting("0.0.0.0", label="Listen address")
    system_id: str = setting("1", label="System ID", check=_check_system_id, feature="F-407",
                             help="ID 1 also offers 101, 102, ... = line 1, 2, ...")
    password: str = setting("", label="Password", secret=True, feature="F-407",
                            check=lambda v: _check_password(v),
                            help="At most 8 characters (SMPP 3.4 password field); empty "
                                 "with the simulated default = generated demo password.")
    line_number: bool = setting(False, label="Line number as deliver_sm recipient",
                                feature="F-407")
    tls_port: int = setting(0, label="SMPP over TLS port (0 = off)", min=0, max=65535)
    tls_cert: str = setting("", label="TLS certificate+key (PEM)")
    window: int = setting(100, label="Submits awaiting their durable write per session",
                          min=1, max=10000)
    deliver_window: int = setting(10, label="Unanswered deliver_sm per session", min=1,
                                  max=1000)
    max_pdu: int = setting(8192, label="Largest accepted PDU", unit="octets", min=64,
                           max=70000)
    read_timeout: float = setting(10.0, label="Read timer (partial PDU)", unit="s", min=1,
                                  max=600)
    inactivity_timeout: float = setting(120.0, label="Inactivity timer", unit="s", min=5,
                                        max=86400)
    response_timeout: float = setting(10.0, label="deliver_sm response timer", unit="s",
                                      min=1, max=600)
    retry_interval: float = setting(30.0, label="deliver_sm retry interval", unit="s", min=1,
                                    max=3600)
    bind_failures: int = setting(5, label="Bind failures before an address is blocked",
                                 min=1, max=1000)
    bind_block: int = setting(300, label="Block time after bind failures", unit="s", min=1,
                              max=86400)
    default_alphabet: str = setting("gsm7", label="data_coding 0 alphabet",
                                    choices=("gsm7", "ascii"))
