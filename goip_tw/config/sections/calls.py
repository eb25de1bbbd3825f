"""Call handling settings: SPEC §4.4 (F-421/422/424/431/432), §4.6 (F-450..452),
§4.7 (F-460..465), F-470 billing period, and the try-it-now demo account.

Per-line settings live in ``[[calls.lines]]`` tables: line n uses entry n-1; a line
without an entry copies line 1 (the manual's "auto-configure other lines" copies
line 1 unchanged for these pages), or the defaults when there is no entry at all.
A line's ``dtmf_mode`` (F-427) overrides ``media.dtmf_mode`` for its calls; empty
keeps the global mode (goip_tw/calls/README.rst says why it lives here).
"""

from __future__ import annotations

import re

import attrs

from goip_tw.config.schema import section, setting
from goip_tw.config.sections.media import DTMF_MODES

SELECTION_MODES = ("round_robin", "least_talk_time")
RINGBACK_MODES = ("color_fake", "color", "fake")
CID_MODES = ("off", "rpid", "from", "pai")
CALL_WAITING_MODES = ("off", "1", "2", "3")

#: mobile end cause (3GPP TS 24.008 Annex H, names below) -> SIP code.  Follows
#: RFC 3398 §7.2.4.1 except "call rejected" (21), which the issue asks to be 603.
DEFAULT_CAUSE_MAP = ("1:404,3:404,16:480,17:486,18:408,19:408,20:480,21:603,22:410,"
                     "27:502,28:484,31:480,34:503,38:503,41:503,42:503,47:503,"
                     "50:403,57:403,58:503,88:503,102:504,127:500")

_NUMBER = re.compile(r"^\+?[0-9*#]+$")
_URI = re.compile(r"^[A-Za-z0-9._+*#-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^[A-Za-z0-9._+*#-]+@\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$")


def _check_dial_rules(value: str) -> None:
    from goip_tw.calls.dialrules import DialRuleError, parse_dial_rules

    try:
        parse_dial_rules(value)
    except DialRuleError as e:
        raise ValueError(str(e)) from None


def parse_cause_map(text: str) -> dict[int, int]:
    """``"17:486,18:408"`` -> {17: 486, 18: 408}; raises ValueError naming the entry."""
    out: dict[int, int] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        cause, sep, code = entry.partition(":")
        try:
            c, s = int(cause), int(code)
        except ValueError:
            raise ValueError(f"cause map entry {entry!r} must be <cause>:<SIP code>") from None
        if not sep or not 0 <= c <= 127 or not 400 <= s <= 699:
            raise ValueError(f"cause map entry {entry!r}: cause 0-127, SIP code 400-699")
        out[c] = s
    return out


def _check_cause_map(value: str) -> None:
    parse_cause_map(value)


def _check_out_forward(value: str) -> None:
    """F-451: a plain number or ``M1:<service number>``."""
    if not value:
        return
    number = value[3:] if value[:3].upper() == "M1:" else value
    if not _NUMBER.match(number):
        raise ValueError(f"forward number must be a number or M1:<service>; got {value!r}")


def _check_in_forward(value: str) -> None:
    """F-463: extension, ``user@host[:port]`` or ``010>101|021>1002``."""
    if not value:
        return
    if ">" in value:
        for entry in value.split("|"):
            prefix, sep, target = entry.partition(">")
            if not sep or not _NUMBER.match(prefix or "") or not (
                    _NUMBER.match(target) or _URI.match(target)):
                raise ValueError(f"forward map entry {entry!r} must look like 010>101")
        return
    if not (_NUMBER.match(value) or _URI.match(value) or re.match(r"^[A-Za-z0-9._-]+$", value)):
        raise ValueError(f"forward number must be an extension or user@host[:port]; got {value!r}")


@attrs.frozen
class LineCalls:
    """Outgoing (F-450..452) and incoming (F-460..465) settings of one line."""

    call_timeout: int = setting(60, label="Call timeout", unit="s", min=0, max=600,
                                feature="F-450", help="Unanswered this long: hang up (0 = never).")
    no_ring_timeout: int = setting(0, label="No-ring timeout", unit="s", min=0, max=600,
                                   feature="F-450",
                                   help="No ringing this long after dialing: hang up (0 = off; "
                                        "not for LTE all-network modules).")
    allow_pstn: bool = setting(True, label="Allow calls to PSTN", feature="F-450")
    forward_number: str = setting("", label="Outgoing forward number", check=_check_out_forward,
                                  feature="F-451",
                                  help="A number skips the second-stage dial; M1:<service> "
                                       "calls the service, then sends the callee as DTMF + #.")
    dial_rules: str = setting("", label="Dial rules", check=_check_dial_rules, feature="F-452")
    strict_dial_rules: bool = setting(False, label="Strict dial rules", feature="F-452")
    digit_timeout: int = setting(10, label="Second-stage digit timeout", unit="s", min=1,
                                 max=120, feature="F-460")
    cid_mode: str = setting("from", label="Caller ID pass-through", choices=CID_MODES,
                            feature="F-461",
                            help="off; rpid = Remote-Party-ID; from = caller ID as From user; "
                                 "pai = P-Asserted-Identity.")
    allow_voip: bool = setting(True, label="Allow calls to VoIP", feature="F-462")
    incoming_forward: str = setting("", label="Incoming forward number",
                                    check=_check_in_forward, feature="F-463",
                                    help="Empty = two-stage dialing; 101; 101@host:port; "
                                         "010>101|021>1002.")
    incoming_dial_rules: str = setting("", label="Second-stage dial rules",
                                       check=_check_dial_rules, feature="F-464")
    cid_rules: str = setting("", label="Caller-ID prefix rules", check=_check_dial_rules,
                             feature="F-464")
    call_waiting: str = setting("off", label="Call waiting", choices=CALL_WAITING_MODES,
                                feature="F-465")
    dtmf_mode: str = setting("", label="DTMF mode", choices=("",) + DTMF_MODES,
                             feature="F-427",
                             help="Empty = media.dtmf_mode. rfc4733 = telephone-event packets; "
                                  "info = SIP INFO; inband = tones in the audio.")


@section("calls")
class CallsConfig:
    selection: str = setting("round_robin", label="Line selection", choices=SELECTION_MODES,
                             feature="F-421")
    ringback: str = setting("color_fake", label="Ringback mode", choices=RINGBACK_MODES,
                            feature="F-422",
                            help="color_fake: 180 now, 183 + early media on ringing; "
                                 "color: 183 + early media on ringing; fake: 180 only.")
    no_line_code: int = setting(503, label="SIP code when no line is free", min=400, max=699,
                                feature="F-424")
    no_answer_timeout: int = setting(60, label="No-answer timeout", unit="s", min=0, max=600,
                                     feature="F-431", help="Reply 408 and end the call.")
    cause_map: str = setting(DEFAULT_CAUSE_MAP, label="Mobile cause to SIP code map",
                             check=_check_cause_map, feature="F-432")
    billing_period: int = setting(60, label="Billing period", unit="s", min=1, max=3600,
                                  feature="F-470", help="A 68 s call at 60 s costs 2 periods.")
    short_call_seconds: int = setting(10, label="Short call below", unit="s", min=0, max=600,
                                      feature="F-304")
    dtmf_digit_ms: int = setting(100, label="DTMF digit length sent to the module", unit="ms",
                                 min=40, max=1000, feature="F-451")
    lines: tuple[LineCalls, ...] = setting(factory=tuple, label="Per-line call settings",
                                           feature="F-450")
    demo_user: str = setting("softphone", label="Demo softphone user",
                             help="User name printed for the try-it-now demo; the password is "
                                  "voip.proxy_password (embedded proxy, F-415).")

    def line(self, n: int) -> LineCalls:
        """Settings of line ``n`` (1-based)."""
        if 1 <= n <= len(self.lines):
            return self.lines[n - 1]
        return self.lines[0] if self.lines else LineCalls()
