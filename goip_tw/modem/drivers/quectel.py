"""Quectel EC2x / EG25-G / EC200x.

Sources: Quectel "EC2x&EG9x&EG2x-G&EM05 Series AT Commands Manual" (AT+QCCID,
AT+QNWINFO, AT+QCFG="ims", AT+QINDCFG, AT+QTONEDET, AT+QMIC, AT+QRXGAIN), Quectel
"UAC Application Note" / "Voice Over USB and UAC Application Note" (AT+QPCMV=1,0
routes call audio to the USB voice port as 8 kHz 16-bit PCM; 1,2 = UAC), Quectel
"HTTP(S) Application Note" (AT+QHTTPURL / AT+QHTTPGET), "EC200x AT Commands Manual".

Call state: AT+QINDCFG="ccinfo",1 (not part of "all" on every firmware, so it is
switched on by name) makes the module report each call change as
``+QIND: "ccinfo",<idx>,<dir>,<state>,<mode>,<mpty>,<number>,<type>`` with the
AT+CLCC fields; a state outside 0-5 means the call was released.  Each one triggers
an AT+CLCC read at once instead of waiting for the poll.
"""

from __future__ import annotations

import re

from twisted.internet import defer

from goip_tw.modem import model
from goip_tw.modem.drivers.base import Driver, split_fields

#: AT+QNWINFO <Act> strings → generation
QNW_ACT = {"GSM": "2G", "GPRS": "2G", "EDGE": "2G", "WCDMA": "3G", "HSDPA": "3G",
           "HSUPA": "3G", "HSPA+": "3G", "TDSCDMA": "3G", "TD-SCDMA": "3G", "CDMA": "3G",
           "EVDO": "3G", "HDR": "3G", "FDD LTE": "4G", "TDD LTE": "4G", "LTE": "4G",
           "CAT-M": "4G", "NBIOT": "4G", "NR5G": "5G"}

_URL_RE = re.compile(r"https?://[A-Za-z0-9.\-:/_%?=&~]{1,200}\Z")


class Quectel(Driver):
    name = "quectel"
    mic_gain_command = "AT+QMIC={0},{0}"
    speaker_gain_command = "AT+QRXGAIN={0}"
    #: after power-on an EC2x says RDY, +CFUN: 1, +CPIN: READY (27.007, in the base
    #: table), +QUSIM: 1, +QIND: SMS DONE and +QIND: PB DONE; M95/UC15-era firmware
    #: says Call Ready and SMS Ready (in the SIMCom table: every table is known
    #: before the vendor is)
    urcs = {"+QIND": False, "+QTONEDET": False, "+QUSIM": False, "+QHTTPGET": False,
            "+QDSIM": False, "+QSIMSTAT": False}
    uac = False
    iccid_command = ("AT+QCCID", "+QCCID")
    technology_command = "AT+QNWINFO"

    @classmethod
    def matches(cls, manufacturer, model_name):
        return "QUECTEL" in manufacturer.upper()

    @property
    def init_commands(self):
        return (
            'AT+QURCCFG="urcport","usbat"',
            'AT+QINDCFG="all",1',
            'AT+QINDCFG="ccinfo",1',
            "AT+QPCMV=1,2" if self.uac else "AT+QPCMV=1,0",
            "AT+QTONEDET=1",
        )

    def parse_technology(self, resp):
        v = resp.value("+QNWINFO")
        if not v:
            return None
        return QNW_ACT.get(split_fields(v)[0].upper())

    def volte_query(self):
        return 'AT+QCFG="ims"'

    def parse_volte(self, resp):
        v = resp.value("+QCFG")
        if not v:
            return None
        f = split_fields(v)  # "ims",<ims enable>[,<volte state>]
        if len(f) >= 3 and f[2].isdigit():
            return f[2] == "1"
        return f[1] == "1" if len(f) > 1 else None

    def volte_commands(self, enabled):
        return [f'AT+QCFG="ims",{1 if enabled else 2}']

    def parse_urc(self, urc):
        if urc.name == "+QIND":
            f = split_fields(urc.value)
            if not f or f[0].lower() != "ccinfo":
                return []
            if len(f) > 3 and f[1].isdigit() and f[3].isdigit() \
                    and int(f[3]) not in model.CALL_STATES:
                return [("call-released", int(f[1])), "refresh-calls"]
            return ["refresh-calls"]
        if urc.name == "+QTONEDET":
            code = urc.value.strip()
            if code.isdigit() and 32 < int(code) < 127:
                return [model.DtmfReceived(chr(int(code)))]
        return []

    @defer.inlineCallbacks
    def http_test(self, modem, url, timeout=90.0):
        if not _URL_RE.match(url):
            raise ValueError(f"url: {url!r} not allowed")
        got = modem.wait_urc("+QHTTPGET", timeout=timeout)
        try:
            yield modem.engine.send(f"AT+QHTTPURL={len(url)},80", kind="data",
                                    connect_text=url)
            yield modem.engine.send("AT+QHTTPGET=80", kind="data")
        except BaseException:
            # the command failed: no +QHTTPGET will come, forget the waiter now
            got.addErrback(lambda f: f.trap(defer.CancelledError))
            got.cancel()
            raise
        urc = yield got
        f = split_fields(urc.value)
        if f[0] != "0":
            return model.HttpResult(0, None)
        return model.HttpResult(int(f[1]), int(f[2]) if len(f) > 2 and f[2].isdigit() else None)


class QuectelUac(Quectel):
    """EC2x with the audio on the USB Audio Class device instead of the voice tty."""
    name = "quectel-uac"
    uac = True
