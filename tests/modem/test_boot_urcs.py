"""Boot URCs that cross the identity commands (scripted module, Clock).

A SIM7600 says ``SMS DONE`` and ``PB DONE`` a moment after ``+CPIN: READY`` (SIMCom
AT Command Manual, URC list).  When one of them reaches us after we sent
``AT+CGMI`` but before the module answered, it must not be taken for the
manufacturer: the driver would be the generic one, AT+DDET=1 never sent and every
received DTMF digit (``+RXDTMF``) lost.  This is the ordering behind the
intermittent ``test_incoming_call_answer_and_dtmf_receive[simcom]`` failure.
"""

import pytest

from goip_tw.modem import model

from .scripted import make, run, settle

SIMCOM_ID = ("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H")


def crossing(t, urc, answer):
    """A reply that the module's URC overtakes on the wire."""
    def reply(cmd):
        t.urc(urc)
        return answer
    return reply


@pytest.mark.parametrize("command, urc", [
    ("AT+CGMI", "PB DONE"), ("AT+CGMI", "SMS DONE"), ("AT+CGMM", "PB DONE"),
    ("AT+CGSN", "SMS DONE"), ("AT+CGMI", "+QIND: PB DONE"), ("AT+CGMI", "^SYSSTART"),
])
def test_boot_urc_before_an_identity_answer_is_not_the_identity(command, urc):
    modem, t, clock = make(SIMCOM_ID)
    answers = {"AT+CGMI": f"{SIMCOM_ID[0]}\r\n\r\nOK", "AT+CGMM": f"{SIMCOM_ID[1]}\r\n\r\nOK",
               "AT+CGSN": "356938035643809\r\n\r\nOK"}
    t.script[command] = crossing(t, urc, answers[command])
    events = []
    modem.add_observer(events.append)
    ident = run(modem.initialise(), clock)
    assert (ident.manufacturer, ident.model, ident.imei) == (*SIMCOM_ID, "356938035643809")
    assert modem.driver.name == "simcom"
    assert "AT+DDET=1" in t.sent and "AT+CLCC=1" in t.sent
    t.urc("+RXDTMF: 5")
    settle(clock)
    assert [e.digit for e in events if isinstance(e, model.DtmfReceived)] == ["5"]
    modem.stop()
