"""The 27.007/27.005 base driver.  Vendor drivers are small tables of differences.

Every hook has the standard behaviour here; a vendor subclass overrides only what its
manual says differs.  Hooks get parsed :class:`~goip_tw.modem.at.Response` objects and
return our model values, so quirks stay out of :mod:`goip_tw.modem.api`.
"""

from __future__ import annotations

import re


#: 27.007 §7.3 <AcT> → generation (0 GSM, 1 GSM compact, 2 UTRAN, 3 EGPRS, 4 HSDPA,
#: 5 HSUPA, 6 HSDPA+HSUPA, 7 E-UTRAN, 8 EC-GSM-IoT, 9 E-UTRAN NB-S1, 10 E-UTRA-5GCN,
#: 11 NR-5GCN, 12 NG-RAN, 13 E-UTRA-NR dual)
ACT_GENERATION = {0: "2G", 1: "2G", 2: "3G", 3: "2G", 4: "3G", 5: "3G", 6: "3G", 7: "4G",
                  8: "2G", 9: "4G", 10: "4G", 11: "5G", 12: "5G", 13: "5G"}

#: TS 24.008 §10.5.4.11 causes, matched against +CEER texts that carry no number.
CAUSE_TEXTS = (
    ("unassigned", 1), ("no route", 3), ("normal call clearing", 16), ("user busy", 17),
    ("no user responding", 18), ("no answer", 19), ("call rejected", 21),
    ("number changed", 22), ("invalid number", 28), ("normal, unspecified", 31),
    ("normal unspecified", 31), ("no circuit", 34), ("network out of order", 38),
    ("temporary failure", 41), ("congestion", 42), ("not subscribed", 50),
    ("barred", 55), ("not implemented", 79),
)


class NotSupported(Exception):
    """The module (driver) has no way to do this."""


def unquote(value: str) -> str:
    return value.strip().strip('"')


def split_fields(value: str) -> list[str]:
    """Split a response payload on commas outside quotes and unquote the fields."""
    return [unquote(f) for f in re.findall(r'"[^"]*"|[^,]+|(?<=,)(?=,)|(?<=,)$|^(?=,)', value)]


def cause_from_text(text: str) -> int | None:
    m = re.search(r"\b(\d{1,3})\b", text)
    if m and 0 < int(m.group(1)) < 128:
        return int(m.group(1))
    low = text.lower()
    for needle, cause in CAUSE_TEXTS:
        if needle in low:
            return cause
    return None


class Driver:
    """Standard 3GPP TS 27.007 / 27.005 behaviour."""

    name = "generic"
    #: vendor URCs the engine must recognise ({name: has_pdu_line})
    urcs: dict[str, bool] = {}
    #: sent after the base init; failures are logged, not fatal
    init_commands: tuple[str, ...] = ()
    #: sent before ATD/ATA and after the last call ended (voice path routing)
    call_start_commands: tuple[str, ...] = ()
    call_end_commands: tuple[str, ...] = ()
    #: the module reports call changes by itself (no CLCC polling needed while idle)
    iccid_command = ("AT+CCID", "+CCID")
    technology_command: str | None = None
    #: USSD strings in +CUSD come as packed GSM 7-bit hex (Huawei) rather than text
    ussd_packed_hex = False

    @classmethod
    def matches(cls, manufacturer: str, model_name: str) -> bool:
        return False

    # -- identity / network
    def parse_iccid(self, resp) -> str | None:
        prefix = self.iccid_command[1]
        raw = resp.value(prefix) or next(iter(resp.plain()), None)
        if not raw:
            return None
        digits = re.sub(r"[^0-9A-Fa-f]", "", unquote(raw)).rstrip("Ff")
        return digits or None

    def parse_technology(self, resp) -> str | None:
        return None

    def volte_query(self) -> str | None:
        return None

    def parse_volte(self, resp) -> bool | None:
        return None

    def volte_commands(self, enabled: bool) -> list[str]:
        raise NotSupported(f"{self.name}: VoLTE switching")

    # -- calls / audio
    #: gain commands ({0} = the value); 27.007 §8.23 AT+CLVL, no standard mic gain
    mic_gain_command: str | None = None
    speaker_gain_command: str | None = "AT+CLVL={0}"

    def gain_commands(self, mic: int | None, speaker: int | None) -> list[str]:
        out = []
        for value, template, what in ((mic, self.mic_gain_command, "microphone gain"),
                                      (speaker, self.speaker_gain_command, "speaker gain")):
            if value is None:
                continue
            if template is None:
                raise NotSupported(f"{self.name}: {what}")
            out.append(template.format(int(value)))
        return out

    def dtmf_command(self, digit: str, duration_ms: int) -> str:
        """27.007 §C.2.11 AT+VTS (tone duration from AT+VTD, in 1/10 s)."""
        return f"AT+VTS={digit}"

    def parse_urc(self, urc) -> list:
        """Vendor URCs → model events, or markers: ``"refresh-calls"`` (read AT+CLCC
        now), ``("call-end-cause", idx, cause)``, ``("call-released", idx)``."""
        return []

    # -- data
    def http_test(self, modem, url: str, timeout: float = 90.0):
        raise NotSupported(f"{self.name}: HTTP test through the module")
