"""SIMCom SIM7500/SIM7600 series.

Source: SIMCom "SIM7500_SIM7600 Series AT Command Manual" (AT+CICCID, AT+CPSI?,
AT+CLCC=1 call-state URCs, AT+DDET DTMF detection with +RXDTMF, AT+CMICGAIN /
AT+COUTGAIN, "VOICE CALL: BEGIN/END" URCs, HTTP service AT+HTTPINIT/HTTPPARA/HTTPACTION)
and the "USB Audio Application Note" (AT+CPCMREG=1 after the call is set up routes
voice to the USB audio port, AT+CPCMREG=0 when it ends).
"""

from __future__ import annotations

import re

from twisted.internet import defer

from goip_tw.modem import at, model
from goip_tw.modem.drivers.base import Driver, split_fields

CPSI_MODE = {"GSM": "2G", "WCDMA": "3G", "TDSCDMA": "3G", "CDMA": "3G", "EVDO": "3G",
             "HDR": "3G", "LTE": "4G", "CAT-M": "4G", "NB-IOT": "4G"}
_URL_RE = re.compile(r"https?://[A-Za-z0-9.\-:/_%?=&~]{1,200}\Z")


class Simcom(Driver):
    name = "simcom"
    mic_gain_command = "AT+CMICGAIN={0}"
    speaker_gain_command = "AT+COUTGAIN={0}"
    urcs = {"VOICE CALL": False, "MISSED_CALL": False, "+RXDTMF": False, "+DTMF": False,
            "+HTTPACTION": False, "+CPIN": False, "SMS DONE": False, "PB DONE": False,
            # said on their own while booting: SIM5360/SIM7100 (START, +STIN: 25 from
            # the SIM toolkit, OPL DONE, PNN DONE), SIM800/SIM900 (Call Ready,
            # SMS Ready), A76xx (*ATREADY: 1)
            "START": False, "+STIN": False, "OPL DONE": False, "PNN DONE": False,
            "Call Ready": False, "SMS Ready": False, "*ATREADY": False}
    init_commands = ("AT+CLCC=1", "AT+DDET=1")
    call_start_commands = ("AT+CPCMREG=1",)
    call_end_commands = ("AT+CPCMREG=0",)
    iccid_command = ("AT+CICCID", "+ICCID")
    technology_command = "AT+CPSI?"

    @classmethod
    def matches(cls, manufacturer, model_name):
        return "SIMCOM" in manufacturer.upper().replace(" ", "")

    def parse_technology(self, resp):
        v = resp.value("+CPSI")
        if not v:
            return None
        return CPSI_MODE.get(split_fields(v)[0].upper())

    def parse_urc(self, urc):
        if urc.name in ("+RXDTMF", "+DTMF"):
            d = urc.value.strip().strip('"')[:1]
            if d and d in "0123456789*#ABCD":
                return [model.DtmfReceived(d)]
        if urc.name in ("VOICE CALL", "MISSED_CALL", "+CLCC"):
            return ["refresh-calls"]
        return []

    @defer.inlineCallbacks
    def http_test(self, modem, url, timeout=90.0):
        """SIM7500/SIM7600/SIM7800 HTTP(S) AT Command Manual: HTTPINIT, HTTPPARA "URL",
        HTTPACTION=0 (GET) answers OK and later ``+HTTPACTION: <method>,<status>,
        <datalen>``; HTTPTERM always, so the next test can HTTPINIT again.  A
        ``<status>`` of 7xx is the module's own error (no network, DNS, socket,
        timeout), not the server's: it comes back as status 0 like Quectel's <err>."""
        if not _URL_RE.match(url):
            raise ValueError(f"url: {url!r} not allowed")
        eng = modem.engine
        try:
            yield eng.send("AT+HTTPINIT", kind="data")
        except at.CmeError:
            pass  # a session left open (an earlier test cut short): reuse it
        except at.AtError as exc:
            if exc.result != "ERROR":
                raise
        got = None
        try:
            yield eng.send(f'AT+HTTPPARA="URL","{url}"', kind="data")
            got = modem.wait_urc("+HTTPACTION", timeout=timeout)
            yield eng.send("AT+HTTPACTION=0", kind="data")
            urc = yield got
        except BaseException:
            if got is not None and not got.called:
                got.addErrback(lambda f: f.trap(defer.CancelledError))
                got.cancel()
            raise
        finally:
            yield eng.send("AT+HTTPTERM").addErrback(lambda f: None)
        f = split_fields(urc.value)
        if len(f) < 2 or not f[1].isdigit():
            raise at.AtError("+HTTPACTION", f"unreadable result {urc.value!r}")
        status = int(f[1])
        if status >= 600:
            return model.HttpResult(0, None)
        return model.HttpResult(status, int(f[2]) if len(f) > 2 and f[2].isdigit() else None)
