"""Huawei ME909s / MU709 / E1750-class modules.

Source: Huawei "ME909s Series LTE Module AT Command Interface Specification" and
"MU709 AT Command Interface Specification": AT^CVOICE (voice over the USB PCM port;
^CVOICE? reports mode,rate,bits,period), AT^DDSETEX=2 (DTMF through the voice port),
call URCs ^ORIG / ^CONF / ^CONN / ^CEND:<id>,<duration>,<end_status>[,<cc_cause>],
^RSSI:<rssi>, boot URCs ^SYSSTART, ^SIMST, ^SRVST and ^STIN (SIM toolkit), AT^ICCID?, AT^SYSINFOEX (sysmode 1 GSM, 3 WCDMA, 4 TD-SCDMA, 6 LTE),
+CUSD strings as packed 7-bit hex (ModemManager's Huawei plugin does the same).
AT^USSDMODE=0 asks the module to code USSD strings itself, since our requests go out
as plain text; E-series firmware starts in the transparent mode 1 (packed hex both
ways).  AT^DDSETEX=2 is repeated for every call (the routing of call audio to the
PCM port lasts one call, which is why public Huawei voice drivers send it per call).
"""

from __future__ import annotations

from goip_tw.modem import model
from goip_tw.modem.drivers.base import Driver, split_fields

SYSMODE = {1: "2G", 2: "3G", 3: "3G", 4: "3G", 5: "3G", 6: "4G", 7: "4G"}


class Huawei(Driver):
    name = "huawei"
    mic_gain_command = "AT+CMIC={0}"
    speaker_gain_command = "AT+CLVL={0}"
    urcs = {"^ORIG": False, "^CONF": False, "^CONN": False, "^CEND": False, "^RSSI": False,
            "^HCSQ": False, "^MODE": False, "^SYSSTART": False, "^SIMST": False,
            "^SRVST": False, "^BOOT": False, "^DDTMF": False, "^DTMF": False,
            "^STIN": False}
    init_commands = ("AT^CVOICE=0", "AT^CVOICE?", "AT^DDSETEX=2", "AT^CURC=1",
                     "AT^USSDMODE=0")
    call_start_commands = ("AT^DDSETEX=2",)
    iccid_command = ("AT^ICCID?", "^ICCID")
    technology_command = "AT^SYSINFOEX"
    ussd_packed_hex = True

    @classmethod
    def matches(cls, manufacturer, model_name):
        return "HUAWEI" in manufacturer.upper()

    def parse_technology(self, resp):
        v = resp.value("^SYSINFOEX")
        if not v:
            return None
        f = split_fields(v)
        return SYSMODE.get(int(f[5])) if len(f) > 5 and f[5].isdigit() else None

    def parse_urc(self, urc):
        if urc.name == "^CEND":
            f = split_fields(urc.value)
            cause = int(f[3]) if len(f) > 3 and f[3].isdigit() else None
            call_id = int(f[0]) if f and f[0].isdigit() else None
            return [("call-end-cause", call_id, cause), "refresh-calls"]
        if urc.name in ("^ORIG", "^CONF", "^CONN"):
            return ["refresh-calls"]
        if urc.name == "^RSSI" and urc.value.strip().isdigit():
            return [model.SignalChanged(model.Signal.from_rssi(int(urc.value)))]
        if urc.name in ("^DDTMF", "^DTMF"):
            d = urc.value.strip().strip('"')[:1]
            if d and d in "0123456789*#ABCD":
                return [model.DtmfReceived(d)]
        return []
