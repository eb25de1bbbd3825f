"""VoIP basic and advanced settings: registration modes, prefixes, admission.

Manual §4.3 (VoIP basic: single server F-410, per line F-412, per group F-413,
trunk gateway F-414, line prefix matching F-411) and §4.4 (VoIP advanced:
outgoing call authentication F-425, embedded proxy F-415).  Transport, timer and keep-alive settings (F-420, F-423, F-426, F-428, F-431)
live in the ``sip`` section; the no-line code (F-424), ringback (F-422) and
caller-ID style (F-461) in the ``calls`` section.

Where the manual is silent we chose: expiry 60 s (its trunk recommendation) and the
secure admission default ``address_or_password``: a fresh install accepts calls
and MESSAGEs without a password only from the configured servers.
"""

from __future__ import annotations

import re

import attrs

from goip_tw.config.schema import section, setting

MODES = ("single", "per_line", "per_group", "trunk")
PREFIX_MATCH = ("off", "caller", "callee")
OUTGOING_AUTH = ("none", "address", "password", "both", "address_or_password")
MAX_LIST_CHARS = 140

_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:(\d{1,5}))?$")
_ADDRESS_ITEM = re.compile(r"^([0-9Xx]{1,3}(\.[0-9Xx]{1,3}){3}|[0-9A-Fa-f:]+|[A-Za-z0-9._-]+)"
                           r"(/\d{1,3})?(:\d{1,5})?$")


def check_hostport(value: str) -> None:
    """``host[:port]`` (manual: default port 5060, e.g. ``192.168.1.100:5070``)."""
    if not value:
        return
    m = _HOSTPORT.match(value.strip())
    if not m:
        raise ValueError(f"expected host[:port], got {value!r}")
    if m.group(3) and not 0 < int(m.group(3)) < 65536:
        raise ValueError(f"port out of range in {value!r}")


def check_prefix_list(value: str) -> None:
    """``00,13,15,17,2``: digits, letters and symbols, ≤140 characters (F-411)."""
    if len(value) > MAX_LIST_CHARS:
        raise ValueError(f"prefix list longer than {MAX_LIST_CHARS} characters")
    for item in value.split(","):
        if any(c.isspace() for c in item.strip()):
            raise ValueError(f"prefix {item!r} contains a space")


def check_address_list(value: str) -> None:
    """``192.168.1.X,10.0.0.5``: addresses or ``X`` ranges, ≤140 characters (F-414)."""
    if len(value) > MAX_LIST_CHARS:
        raise ValueError(f"address list longer than {MAX_LIST_CHARS} characters")
    for item in filter(None, (i.strip() for i in value.split(","))):
        if not _ADDRESS_ITEM.match(item):
            raise ValueError(f"not an address or X range: {item!r}")


@attrs.frozen
class SipAccount:
    """One SIP account (F-410 fields; also each line's F-412 and group's F-413)."""

    auth_id: str = setting("", label="Auth ID", feature="F-410")
    password: str = setting("", label="Password", secret=True, feature="F-410")
    registrar: str = setting("", label="Registrar server", check=check_hostport,
                             help="host[:port]; the port defaults to 5060.",
                             feature="F-410")
    proxy: str = setting("", label="Proxy server", check=check_hostport,
                         help="Where calls are sent; usually the registrar (the default).",
                         feature="F-410")
    expires: int = setting(60, label="Registration expiry", unit="s", min=0, max=86400,
                           help="0 = do not register.", feature="F-410")
    phone_number: str = setting("", label="Phone number",
                                help="Defaults to the auth ID.", feature="F-410")
    display_name: str = setting("", label="Display name (From)", feature="F-410")
    outbound_proxy: str = setting("", label="Outbound proxy (Route)", check=check_hostport,
                                  feature="F-410")
    home_domain: str = setting("", label="Home domain",
                               help="Domain of the AoR; defaults to the registrar host.",
                               feature="F-410")
    backup_registrar: str = setting("", label="Backup server", check=check_hostport,
                                    help="Used while the main server does not answer.",
                                    feature="F-410")
    transport: str = setting("udp", label="Transport to the server",
                             choices=("udp", "tcp", "tls"), feature="F-201")
    prefixes: str = setting("", label="Gateway prefixes", check=check_prefix_list,
                            help="Comma separated, e.g. 00,13,15,17,2.", feature="F-411")

    @property
    def user(self) -> str:
        """The number in From/To/Contact: phone number, else auth ID (manual §4.3)."""
        return self.phone_number or self.auth_id


@attrs.frozen
class SipGroup:
    """A group of lines sharing one registration (F-413)."""

    name: str = setting("", label="Group name", feature="F-413")
    lines: tuple[int, ...] = setting((), label="Lines in this group", feature="F-413")
    account: SipAccount = setting(factory=SipAccount, label="Account", feature="F-413")


@section("voip")
class VoipConfig:
    """How the gateway meets the VoIP side: registration, routing, admission."""

    mode: str = setting("single", label="VoIP mode", choices=MODES, feature="F-410",
                        help="single server, per line, per group, or trunk gateway.")
    account: SipAccount = setting(factory=SipAccount, label="Single server account",
                                  feature="F-410")
    lines: tuple[SipAccount, ...] = setting((), label="Per line accounts",
                                            help="Entry n-1 is line n.", feature="F-412")
    auto_configure_lines: bool = setting(
        False, label="Auto-configure other lines",
        help="Copy line 1 to every line, auth ID, prefix, number and display name +1.",
        feature="F-412")
    groups: tuple[SipGroup, ...] = setting((), label="Groups", feature="F-413")

    prefix_match: str = setting("callee", label="Line prefix matching",
                                choices=PREFIX_MATCH, feature="F-411")
    strip_prefix: bool = setting(False, label="Strip prefix when dialing",
                                 help="Only with callee matching.", feature="F-411")

    trunk_gateway1: str = setting("", label="SIP trunk gateway 1", check=check_hostport,
                                  help="The only destination of incoming calls.",
                                  feature="F-414")
    trunk_gateway2: str = setting("", label="SIP trunk gateway 2", check=check_address_list,
                                  help="Addresses or ranges such as 192.168.1.X.",
                                  feature="F-414")
    trunk_gateway3: str = setting("", label="SIP trunk gateway 3", check=check_address_list,
                                  feature="F-414")
    trunk_expires: int = setting(0, label="Trunk registration expiry", unit="s", min=0,
                                 max=86400, help="0 = do not register; 60 recommended.",
                                 feature="F-414")

    outgoing_auth: str = setting(
        "address_or_password", label="Outgoing call authentication", choices=OUTGOING_AUTH,
        help="none; address (only configured servers); password (401 challenge); both; "
             "address_or_password (servers, or anyone who proves the password).",
        feature="F-425")
    proxy_enabled: bool = setting(False, label="Embedded proxy mode", feature="F-415")
    proxy_password: str = setting("", label="Proxy client password", secret=True,
                                  feature="F-415")
    proxy_max_expires: int = setting(3600, label="Proxy maximum registration expiry",
                                     unit="s", min=60, max=86400, feature="F-415")

    digest_sha256: bool = setting(
        False, label="Also offer SHA-256 digest (RFC 8760)",
        help="Off by default: some clients (baresip 1.0, sipsak) refuse a challenge "
             "set that names an algorithm they do not know.", feature="F-425")
    register_retry: int = setting(30, label="Registration retry interval", unit="s",
                                  min=1, max=3600)
    failover_after: int = setting(2, label="Fail over after N failed attempts", min=1,
                                  max=20, feature="F-410")
    primary_probe: int = setting(60, label="Return to the main server: probe interval",
                                 unit="s", min=5, max=3600, feature="F-410")

    def __attrs_post_init__(self):
        if self.mode == "trunk" and not self.trunk_gateway1 and self.trunk_expires:
            raise ValueError("voip.trunk_gateway1 is required to register in trunk mode")
        if self.proxy_enabled and not self.proxy_password:
            raise ValueError("voip.proxy_password is required with the embedded proxy")
        if self.mode == "per_line" and not self.auto_configure_lines:
            _check_distinct_prefixes(
                [(f"voip.lines[{i}]", a.prefixes) for i, a in enumerate(self.lines)
                 if a.auth_id or a.prefixes])
        if self.mode == "per_group":
            _check_distinct_prefixes(
                [(f"voip.groups[{i}]", g.account.prefixes) for i, g in enumerate(self.groups)])


def _check_distinct_prefixes(entries: list[tuple[str, str]]) -> None:
    """Manual §4.3: every line (group) needs at least one prefix no other has.

    An entry with no prefix at all is allowed (calls for it are refused with 603
    until one is set), so a half-filled form still loads.
    """
    sets = [(key, {p.strip() for p in text.split(",") if p.strip()}) for key, text in entries]
    for key, prefixes in sets:
        others = set().union(*(p for k, p in sets if k != key)) if len(sets) > 1 else set()
        if prefixes and prefixes <= others:
            raise ValueError(f"{key}.prefixes: needs at least one prefix no other entry has")


_TRAILING_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def increment(text: str, step: int) -> str:
    """Add ``step`` to the last run of digits, keeping its width (``goip-01`` -> ``goip-02``).

    Text without digits is returned unchanged (manual §4.3: "auto-configure other
    lines" raises auth ID, prefix, number and display name by 1 per line).
    """
    m = _TRAILING_NUMBER.search(text)
    if not m or step == 0:
        return text
    digits = m.group(1)
    value = str(int(digits) + step).zfill(len(digits))
    return text[:m.start(1)] + value + text[m.end(1):]


def auto_configure(first: SipAccount, count: int) -> tuple[SipAccount, ...]:
    """Line 1's account copied to ``count`` lines, +1 per line (F-412, F-499)."""
    out = []
    for i in range(count):
        out.append(attrs.evolve(
            first,
            auth_id=increment(first.auth_id, i),
            phone_number=increment(first.phone_number, i),
            display_name=increment(first.display_name, i),
            prefixes=",".join(increment(p, i) for p in first.prefixes.split(","))
            if first.prefixes else "",
        ))
    return tuple(out)


def line_accounts(voip: "VoipConfig", count: int) -> tuple[SipAccount, ...]:
    """The per-line accounts in force for ``count`` lines (auto-configure applied;
    missing entries are empty accounts, which neither register nor match)."""
    if voip.auto_configure_lines and voip.lines:
        return auto_configure(voip.lines[0], count)
    lines = tuple(voip.lines[:count])
    return lines + tuple(SipAccount() for _ in range(count - len(lines)))
