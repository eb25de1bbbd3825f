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


# --------------------------------------------------------------------------- every vendor

#: what modules say on their own while booting: Quectel EC2x (RDY, +CFUN: 1, +CPIN:
#: READY, +QUSIM: 1, +QIND: SMS DONE / PB DONE), SIMCom SIM7500/SIM7600 (RDY, +CPIN:
#: READY, SMS DONE, PB DONE), SIM5360/SIM7100 (START, +STIN: 25, OPL DONE, PNN DONE),
#: SIM800 and Quectel M95 (Call Ready, SMS Ready), SIMCom A76xx (*ATREADY: 1), Huawei
#: ME909s (^SYSSTART, ^SIMST: 1, ^SRVST: 2, ^STIN)
BOOT_LINES = [
    "RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE",
    "SMS DONE", "PB DONE", "START", "+STIN: 25", "OPL DONE", "PNN DONE", "Call Ready",
    "SMS Ready", "*ATREADY: 1", "^SYSSTART", "^SIMST: 1", "^SIMST:1", "^SRVST: 2",
    "^STIN: 0,0",
]

#: (AT+CGMI answer, AT+CGMM answer, driver) as the modules give them
MODULES = [
    ("Quectel", "EC25", "quectel"),
    ("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H", "simcom"),
    ("SIMCOM_Ltd", "SIMCOM_SIM800C", "simcom"),
    ("Huawei Technologies Co., Ltd.", "ME909s-120", "huawei"),
    ("Telit", "LE910C4-EU", "generic"),
]

BOOT_SEQUENCES = {
    "quectel": ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE",
                "+QIND: PB DONE"],
    "simcom": ["RDY", "+CPIN: READY", "SMS DONE", "PB DONE"],
    "sim5360": ["START", "+STIN: 25", "+STIN: 25", "+CPIN: READY", "OPL DONE", "PNN DONE",
                "SMS DONE", "PB DONE"],
    "sim800": ["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"],
    "huawei": ["^SYSSTART", "^SIMST: 1", "^SRVST: 2"],
}


def initialised(identity, crossings):
    """Initialise a scripted module whose answers to the commands in ``crossings``
    are overtaken by the given boot lines; returns (ident, modem, transport, events)."""
    modem, t, clock = make(identity)
    answers = {"AT+CGMI": f"{identity[0]}\r\n\r\nOK", "AT+CGMM": f"{identity[1]}\r\n\r\nOK"}
    for command, lines in crossings.items():
        def reply(cmd, lines=lines, answer=answers[command]):
            for line in lines:
                t.urc(line)
            return answer
        t.script[command] = reply
    events, urcs = [], []
    modem.add_observer(events.append)
    modem.engine.add_urc_observer(urcs.append)
    ident = run(modem.initialise(), clock)
    settle(clock)
    said = [line for lines in crossings.values() for line in lines]
    assert len(urcs) == len(said)  # each one taken for a URC, none for an answer line
    return ident, modem, t, events


@pytest.mark.parametrize("manufacturer, model_name, driver", MODULES)
@pytest.mark.parametrize("command", ["AT+CGMI", "AT+CGMM"])
@pytest.mark.parametrize("line", BOOT_LINES)
def test_no_boot_line_becomes_the_manufacturer_or_model(line, command, manufacturer,
                                                        model_name, driver):
    ident, modem, t, events = initialised((manufacturer, model_name), {command: [line]})
    assert (ident.manufacturer, ident.model) == (manufacturer, model_name)
    assert modem.driver.name == driver
    # ignored: at most the SIM state it announces, nothing a caller has to act on
    assert all(isinstance(e, model.SimStatusChanged) and e.status == "READY" for e in events)
    modem.stop()


@pytest.mark.parametrize("sequence", sorted(BOOT_SEQUENCES))
@pytest.mark.parametrize("manufacturer, model_name, driver", MODULES)
def test_a_whole_boot_sequence_across_both_identity_commands(sequence, manufacturer,
                                                             model_name, driver):
    lines = BOOT_SEQUENCES[sequence]
    half = len(lines) // 2
    ident, modem, t, events = initialised(
        (manufacturer, model_name), {"AT+CGMI": lines[:half], "AT+CGMM": lines[half:]})
    assert (ident.manufacturer, ident.model, ident.imei) == (
        manufacturer, model_name, "356938035643809")
    assert modem.driver.name == driver
    modem.stop()


@pytest.mark.parametrize("answer", [
    "Quectel", "SIMCOM INCORPORATED", "SIMCOM_Ltd", "Huawei Technologies Co., Ltd.",
    "huawei", "Telit", "u-blox", "Fibocom Wireless Inc.", "Sierra Wireless, Incorporated",
    "ZTE CORPORATION", "Call Ready Systems", "START Electronics", "STARTEC: modems",
])
def test_a_genuine_manufacturer_answer_is_still_the_answer(answer):
    """Boot lines match as whole lines, or by the name before a colon: an answer that
    merely starts like one is read as the manufacturer."""
    ident, modem, t, events = initialised((answer, "X1"), {})
    assert ident.manufacturer == answer
    modem.stop()
