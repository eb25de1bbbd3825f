"""Foundation sections: general preferences, web access, users, store, logging."""

from __future__ import annotations

import ipaddress

from goip_tw.config.schema import section, setting


def _check_tz(value: str) -> None:
    """F-401 time zone "GMT±X", X in -11..12."""
    if not value.startswith("GMT"):
        raise ValueError(f"time zone must look like GMT+8 or GMT-5; got {value!r}")
    rest = value[3:] or "+0"
    try:
        x = int(rest)
    except ValueError:
        raise ValueError(f"time zone must look like GMT+8 or GMT-5; got {value!r}") from None
    if not -11 <= x <= 12:
        raise ValueError(f"time zone offset must be within -11..12; got {x}")


def _check_addr(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None


def _check_addrs(values) -> None:
    for v in values:
        _check_addr(v)
    if len(values) > 2:
        raise ValueError("at most two whitelisted addresses (F-403)")


@section("general")
class GeneralSection:
    name: str = setting("goip-tw", label="Gateway name", help="Shown in the page header.")
    language: str = setting("en", label="UI language", choices=("en", "zh"), level="sms",
                            feature="F-401")
    timezone: str = setting("GMT+0", label="Time zone", check=_check_tz, feature="F-401",
                            help="GMT±X, X in -11..12.")
    serial: str = setting("", label="Serial number",
                          help="Shown in the header; generated on first start when empty.")
    scheduled_restart: str = setting("", label="Scheduled restart", feature="F-406",
                                     help="HH:MM daily, or M minutes (M > 0); empty = never.")


@section("web")
class WebSection:
    bind: str = setting("127.0.0.1", label="Listen address", check=_check_addr,
                        help="127.0.0.1 for a first run; 0.0.0.0 to serve the LAN.")
    port: int = setting(8080, label="HTTP port", min=0, max=65535, feature="F-403",
                        help="0 picks a free port (printed at start).")
    lan_access: bool = setting(True, label="Allow web access from the LAN", feature="F-403")
    whitelist: list[str] = setting(factory=tuple, label="Whitelisted addresses",
                                   check=_check_addrs, feature="F-403",
                                   help="Up to two addresses allowed when LAN access is off.")


@section("users")
class UsersSection:
    """F-301: three fixed users; only admin is enabled by default."""

    admin_password: str = setting("admin", label="admin password", secret=True, feature="F-301")
    user_enabled: bool = setting(False, label="Enable user 'user'", feature="F-301")
    user_password: str = setting("user", label="user password", secret=True, feature="F-301")
    sms_enabled: bool = setting(False, label="Enable user 'sms'", feature="F-301")
    sms_password: str = setting("sms", label="sms password", secret=True, feature="F-301")


@section("store")
class StoreSection:
    backend: str = setting("sqlite", label="Store backend", choices=("sqlite",),
                           help="PostgreSQL arrives with fleet mode.")
    sqlite_file: str = setting("goip.sqlite", label="SQLite file",
                               help="Relative to the data directory.")


@section("logging")
class LoggingSection:
    format: str = setting("text", label="Log format", choices=("text", "json"))
    level: str = setting("info", label="Log level", choices=("debug", "info", "warn", "error"))
