"""Received-SMS settings: forwarding (F-496/F-497/F-498), SMS commands (F-1501,
F-490), USSD (F-504) and own-number discovery (F-510)."""

from __future__ import annotations

import re

from goip_tw.config.schema import section, setting

SMTP_SECURITY = ("starttls", "tls", "none")
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_EMAIL = re.compile(r"[^@\s,;<>\"]{1,64}@[A-Za-z0-9.-]{1,253}")
_USSD = re.compile(r"[0-9*#]{1,40}")


def _check_number(value: str) -> None:
    if value and not _NUMBER.fullmatch(value):
        raise ValueError(f"not a phone number (digits, optional leading +): {value!r}")


def _check_sender(value: str) -> None:
    if value and not re.fullmatch(r"[+0-9A-Za-z ]{1,20}", value):
        raise ValueError(f"not a sender number or name: {value!r}")


def _check_email(value: str) -> None:
    if value and not _EMAIL.fullmatch(value):
        raise ValueError(f"not an e-mail address: {value!r}")


def _check_emails(values) -> None:
    for v in values:
        if not _EMAIL.fullmatch(v):
            raise ValueError(f"not an e-mail address: {v!r}")


def _check_ussd(value: str) -> None:
    if value and not _USSD.fullmatch(value):
        raise ValueError(f"a USSD code holds digits, * and # only: {value!r}")


def _check_sip_target(value: str) -> None:
    if value and (any(c in value for c in " \t\r\n<>\"") or len(value) > 200):
        raise ValueError(f"not an extension or SIP URI: {value!r}")


def _check_lines(values) -> None:
    for v in values:
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"not a line number: {v!r}")


def _check_host(value: str) -> None:
    if value and not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]{1,253}", value):
        raise ValueError(f"not a host name or address: {value!r}")


@section("sms_inbound")
class SmsInboundSection:
    # -- storing -----------------------------------------------------------------------
    reassembly_timeout: int = setting(
        300, label="Wait for missing parts of a long SMS", unit="s", min=10, max=86400,
        help="Then the message is stored with the parts that arrived.")
    # -- forwarding ----------------------------------------------------------------------
    forward_sip_target: str = setting(
        "", label="Forward received SMS to VoIP", check=_check_sip_target, feature="F-496",
        help="Extension (101) or SIP URI (sip:101@192.168.2.2:6060); empty = off.")
    forward_sip_from_user: str = setting(
        "", label="From user of forwarded MESSAGEs", feature="F-496",
        help="Empty = the gateway's registration ID.")
    forward_mobile_number: str = setting(
        "", label="Forward received SMS to a mobile number", check=_check_number,
        feature="F-497", help="Sent as L1,<sender>><text>; empty = off.")
    forward_mobile_line: int = setting(
        0, label="Line for mobile forwards", min=0, max=512, feature="F-497",
        help="0 = chosen by the SMS routing rules.")
    forward_lines: tuple[int, ...] = setting(
        (), label="Lines whose SMS are forwarded", check=_check_lines,
        help="Empty = every line.")
    forward_retry_base: float = setting(10.0, label="First forward retry after", unit="s",
                                        min=1, max=3600)
    forward_retry_max: float = setting(900.0, label="Longest forward retry interval", unit="s",
                                       min=10, max=86400)
    forward_max_age: int = setting(3 * 86400, label="Give up a forward after", unit="s",
                                   min=60, max=30 * 86400)
    # -- e-mail (F-498) ------------------------------------------------------------------
    email_to: tuple[str, ...] = setting(
        (), label="Forward received SMS to e-mail", check=_check_emails, feature="F-498",
        help="Recipient addresses; empty = off.")
    email_from: str = setting("", label="Sender address", check=_check_email, feature="F-498")
    smtp_host: str = setting("", label="SMTP server", check=_check_host, feature="F-498")
    smtp_port: int = setting(587, label="SMTP port", min=1, max=65535, feature="F-498",
                             help="587 with STARTTLS, 465 with TLS.")
    smtp_security: str = setting("starttls", label="SMTP security", choices=SMTP_SECURITY,
                                 feature="F-498",
                                 help="none sends the password in clear: only on a trusted LAN.")
    smtp_username: str = setting("", label="SMTP account", feature="F-498")
    smtp_password: str = setting("", label="SMTP password", secret=True, feature="F-498")
    smtp_ca_file: str = setting("", label="CA certificate file (PEM)", feature="F-498",
                                help="Empty = the system's trusted CAs.")
    smtp_timeout: int = setting(30, label="SMTP timeout", unit="s", min=5, max=600)
    # -- SMS commands (F-1501) -----------------------------------------------------------
    info_command: bool = setting(True, label="Answer ###INFO### SMS", feature="F-490")
    info_interval: int = setting(300, label="###INFO### replies per sender at most every",
                                 unit="s", min=0, max=86400, feature="F-1501")
    info_max_per_hour: int = setting(20, label="###INFO### replies per hour (all senders)",
                                     min=0, max=1000, feature="F-1501")
    command_max_failures: int = setting(3, label="Wrong SMS command passwords before lockout",
                                        min=1, max=100, feature="F-1501")
    command_lockout: int = setting(3600, label="SMS command lockout", unit="s", min=60,
                                   max=7 * 86400, feature="F-1501")
    command_global_max_failures: int = setting(
        10, label="Wrong passwords from all senders before RESET/REBOOT lock",
        min=1, max=1000, feature="F-1501")
    # -- USSD (F-504) --------------------------------------------------------------------
    ussd_idle_timeout: int = setting(120, label="Cancel an unanswered USSD menu after",
                                     unit="s", min=10, max=600, feature="F-504")
    # -- own number (F-510) --------------------------------------------------------------
    own_number_ussd_code: str = setting("", label="Own number USSD code", check=_check_ussd,
                                        feature="F-510")
    own_number_ussd_phrase: str = setting("", label="Phrase before the number (USSD)",
                                          feature="F-510")
    own_number_sms_service: str = setting("", label="Own number query SMS to",
                                          check=_check_sender, feature="F-510")
    own_number_sms_query: str = setting("", label="Own number query text", feature="F-510")
    own_number_sms_reply_from: str = setting("", label="Reply comes from",
                                             check=_check_sender, feature="F-510")
    own_number_sms_phrase: str = setting("", label="Phrase before the number (SMS)",
                                         feature="F-510")
    own_number_token_target: str = setting(
        "", label="Known number that receives SIM tokens", check=_check_number,
        feature="F-510", help="A line of this gateway whose number is known.")
    own_number_token_ttl: int = setting(86400, label="SIM token valid for", unit="s",
                                        min=60, max=30 * 86400, feature="F-510")
    own_number_timeout: int = setting(600, label="Wait for a discovery answer", unit="s",
                                      min=30, max=86400, feature="F-510")
