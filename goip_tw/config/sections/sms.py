"""Outgoing SMS settings: the durable queue and routing (F-493, F-494, F-1801), the
GoIP "SMS server" client (F-492) and the GoIP HTTP endpoints (SPEC §7)."""

from __future__ import annotations

from goip_tw.config.schema import section, setting

UNCERTAIN_POLICIES = ("assume_sent", "resend")


def _check_dial_rules(value: str) -> None:
    from goip_tw.calls.dialrules import DialRuleError, parse_dial_rules

    try:
        parse_dial_rules(value)
    except DialRuleError as e:
        raise ValueError(str(e)) from None


def _check_prefixes(value: tuple) -> None:
    for entry in value:
        text = str(entry)
        if len(text) > 140:
            raise ValueError("a prefix list is at most 140 characters (F-411)")
        for p in text.split(","):
            if p and not all(c.isalnum() or c in "+*#" for c in p.strip()):
                raise ValueError(f"prefix {p!r} may hold digits, letters, + * # only")


@section("sms")
class SmsConfig:
    """The outgoing queue shared by SMPP, SIP MESSAGE, web, API and forwarding."""

    rewrite_rules: str = setting("", label="Recipient rewrite rules", check=_check_dial_rules,
                                 help="Dial rule syntax (Appendix E) applied to every recipient.",
                                 feature="F-493")
    strict_rewrite: bool = setting(False, label="Strict recipient rules", feature="F-493")
    interval: float = setting(0.0, label="Minimum interval between SMS on a line", unit="s",
                              min=0, max=3600, feature="F-494")
    line_prefixes: tuple[str, ...] = setting((), label="Line prefixes for SMS",
                                             check=_check_prefixes,
                                             help="Entry n = comma separated prefixes of line n+1.",
                                             feature="F-411")
    strip_prefix: bool = setting(False, label="Strip the matched prefix", feature="F-411")
    match_caller: bool = setting(True, label="Also match the sender's prefix (SIP MESSAGE)",
                                 feature="F-1801")
    validity: int = setting(86400, label="Validity of a queued SMS", unit="s", min=60,
                            max=30 * 86400)
    max_queued: int = setting(100000, label="Queue bound", min=10, max=10_000_000,
                              help="Above it SMPP answers ESME_RTHROTTLED, HTTP 503.")
    retries: int = setting(2, label="Retries per line after +CMS ERROR", min=0, max=20)
    backoff: float = setting(5.0, label="First retry delay", unit="s", min=0.1, max=3600)
    assembly_timeout: int = setting(300, label="Wait for missing SMPP fragments", unit="s",
                                    min=5, max=86400)
    uncertain_policy: str = setting(
        "assume_sent", label="Unconfirmed part after a crash", choices=UNCERTAIN_POLICIES,
        help="Only used when the SIM cannot tell its last TP-MR: never twice, or never lost.")
    status_reports: bool = setting(True, label="Request status reports")
    sip_result_report: bool = setting(True, label="SIP MESSAGE result report", feature="F-1801")
    sip_first_line_target: bool = setting(True, label="Target number from the first body line",
                                          feature="F-1801")
    # F-492 GoIP SMS server (UDP)
    server_enabled: bool = setting(False, label="Use an SMS server", feature="F-492")
    server_host: str = setting("", label="SMS server address", feature="F-492")
    server_port: int = setting(44444, label="SMS server port", min=1, max=65535,
                               feature="F-492")
    server_id: str = setting("goip", label="SMS server client ID", feature="F-492",
                             help="Line n uses this ID with n appended when several lines exist.")
    server_password: str = setting("", label="SMS server password", secret=True,
                                   feature="F-492")
    server_keepalive: int = setting(30, label="SMS server keep-alive", unit="s", min=5,
                                    max=3600, feature="F-492")
    # SPEC §7 GoIP HTTP endpoints
    http_api: bool = setting(True, label="GoIP HTTP send.html / send_status.xml")
