"""SIM PIN2/PUK2 on the simulated card, through the pty (TS 27.007 8.3 +CPIN,
8.5 +CPWD; counters as Quectel AT+QPINC? and SIMCom AT+SPIC? report them)."""

import pytest
from treq.testing import StubTreq

from goip_tw.simulator.control import ControlApi

from .conftest import ready
from .test_control import call

COUNTERS = {"quectel": "AT+QPINC?", "simcom": "AT+SPIC"}


def counters(c, dialect):
    """(pin2_left, puk2_left) as the dialect's counter command prints them."""
    lines = c.lines(COUNTERS[dialect])
    assert lines[-1] == "OK"
    if dialect == "quectel":
        p2 = [x for x in lines if x.startswith('+QPINC: "P2"')][0]
        _, left, puk = p2.split(",")
        return int(left), int(puk)
    pin1, pin2, puk1, puk2 = lines[0].split(": ")[1].split(",")
    return int(pin2), int(puk2)


@pytest.mark.parametrize("dialect", ["quectel", "simcom"])
def test_pin2_wanted_wrong_right_and_counters(sim, dialect):
    s, (c,) = ready(sim, modules=1, dialects=[dialect])
    module = s.network.modules[0]
    assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert counters(c, dialect) == (3, 10)
    assert module.sim.demand_pin2() == 17
    assert c.lines("AT+CPIN?") == ["+CPIN: SIM PIN2", "OK"]
    assert c.lines('AT+CPIN="9999"') == ["+CME ERROR: 16"]
    assert counters(c, dialect) == (2, 10)
    assert c.lines("AT+CPIN?") == ["+CPIN: SIM PIN2", "OK"]
    assert c.lines('AT+CPIN="2222"') == ["OK"]
    assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert counters(c, dialect) == (3, 10)
    assert module.registered  # PIN1 never stopped being verified
    assert "+CPIN" not in c.take()  # no READY URC: nothing changed for PIN1


@pytest.mark.parametrize("dialect", ["quectel", "simcom"])
def test_three_wrong_pin2s_want_puk2(sim, dialect):
    s, (c,) = ready(sim, modules=1, dialects=[dialect])
    card = s.network.modules[0].sim
    card.demand_pin2()
    assert c.lines('AT+CPIN="1111"') == ["+CME ERROR: 16"]
    assert c.lines('AT+CPIN="3333"') == ["+CME ERROR: 16"]
    assert c.lines('AT+CPIN="4444"') == ["+CME ERROR: 18"]
    assert c.lines("AT+CPIN?") == ["+CPIN: SIM PUK2", "OK"]
    assert counters(c, dialect) == (0, 10)
    assert card.demand_pin2() == 18
    assert c.lines('AT+CPIN="00000000","4321"') == ["+CME ERROR: 16"]
    assert counters(c, dialect) == (0, 9)
    assert c.lines('AT+CPIN="22222222","4321"') == ["OK"]
    assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert counters(c, dialect) == (3, 10)
    assert card.pin2 == "4321"


def test_cpwd_p2_counts_wrong_old_pin2(sim):
    s, (c,) = ready(sim, modules=1)
    card = s.network.modules[0].sim
    assert c.lines('AT+CPWD="P2","2222","5678"') == ["OK"]
    assert card.pin2 == "5678"
    assert c.lines('AT+CPWD="P2","0000","1234"') == ["+CME ERROR: 16"]
    assert c.lines('AT+CPWD="P2","0000","1234"') == ["+CME ERROR: 16"]
    assert c.lines('AT+CPWD="P2","0000","1234"') == ["+CME ERROR: 18"]
    assert c.lines("AT+CPIN?") == ["+CPIN: SIM PUK2", "OK"]
    assert c.lines('AT+CPWD="P2","5678","1234"') == ["+CME ERROR: 18"]
    assert c.lines('AT+CPWD="P2","5678","12"') == ["+CME ERROR: 50"]
    assert c.lines('AT+CPWD="XX","5678","1234"') == ["+CME ERROR: 50"]
    assert card.pin2 == "5678"


def test_power_cycle_forgets_a_pending_pin2(sim):
    s, (c,) = ready(sim, modules=1)
    card = s.network.modules[0].sim
    card.demand_pin2()
    card.reset_session()
    assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]


def test_control_api_demands_pin2(sim):
    s, (c,) = ready(sim, modules=1)
    stub = StubTreq(ControlApi(s.network).app.resource())
    code, body = call(stub, "post", "/modules/1/pin2", {})
    assert code == 200 and body["slots"][0]["pin2_state"] == "SIM PIN2"
    assert c.lines("AT+CPIN?") == ["+CPIN: SIM PIN2", "OK"]
    s.network.modules[0].insert_sim(0, None)
    code, body = call(stub, "post", "/modules/1/pin2", {})
    assert code == 400 and body["field"] == "number"
