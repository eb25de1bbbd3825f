"""Modem.unlock_pin2 through simulator ptys, Quectel and SIMCom dialects.

TS 27.007 8.3: ``+CPIN: SIM PIN2`` is what the ME waits for after an operation
needing PIN2 was refused; ``AT+CPIN=<pin2>`` answers it; three wrong PIN2s want
PUK2.  Our rule (F-105) is the same as for PIN1: a PIN2 the card refused is never
sent again by us, and nothing is retried automatically.
"""

import pytest
import pytest_twisted

from goip_tw.modem import at, model
from goip_tw.modem.api import PinRejected

from .simhelp import booted, wait_until

DIALECTS = ["quectel", "simcom"]


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_unlock_pin2_right_and_wrong(net, dialect):
    rig = yield booted(net, dialect)
    try:
        m, card = rig.modem, rig.module.sim
        yield m.initialise()
        yield m.read_sim_identity()
        yield wait_until(lambda: rig.module.registered)
        # nothing wanted: unlock_pin2 is a no-op answering READY, the card untouched
        assert (yield m.unlock_pin2("2222")) == "READY"
        assert card.pin2_left == 3
        card.demand_pin2()  # e.g. a fixed-dialling edit refused with +CME ERROR: 17
        assert (yield m.pin_status()) == "SIM PIN2"
        with pytest.raises(PinRejected, match="SIM PIN2 rejected"):
            yield m.unlock_pin2("9999")
        assert card.pin2_left == 2
        # the same wrong PIN2 is refused by us, not sent: the card's counter stays
        with pytest.raises(PinRejected, match="not retrying"):
            yield m.unlock_pin2("9999")
        assert card.pin2_left == 2
        # a PIN1 unlock is not a PIN2 one: refused without sending anything
        with pytest.raises(PinRejected, match="SIM PIN2"):
            yield m.unlock("1234")
        assert card.pin2_left == 2 and card.pin_left == 3
        with pytest.raises(at.BadArgument):
            yield m.unlock_pin2('22";AT+CFUN=0')
        assert (yield m.unlock_pin2("2222")) == "READY"
        assert card.pin2_left == 3 and not card.pin2_wanted
        assert rig.of(model.SimStatusChanged)[-1] == model.SimStatusChanged("READY")
        assert rig.module.registered and (yield m.pin_status()) == "READY"
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_wrong_pin2s_reach_puk2_and_stop(net, dialect):
    rig = yield booted(net, dialect)
    try:
        m, card = rig.modem, rig.module.sim
        yield m.initialise()
        yield m.read_sim_identity()
        card.demand_pin2()
        for wrong in ("1111", "3333", "4444"):
            with pytest.raises(PinRejected, match="rejected"):
                yield m.unlock_pin2(wrong)
        assert card.pin2_left == 0
        assert (yield m.pin_status()) == "SIM PUK2"
        # even the right PIN2 is not sent once the card wants PUK2: a human decides
        with pytest.raises(PinRejected, match="SIM PUK2"):
            yield m.unlock_pin2("2222")
        assert card.puk2_left == 10 and card.pin2_left == 0
        # PIN1 is still verified: the line keeps working
        yield wait_until(lambda: rig.module.registered)
        assert (yield m.signal()).rssi == rig.module.rssi
    finally:
        yield rig.close()
