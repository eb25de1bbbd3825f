"""Debian's gammu (a real AT client with its own Huawei quirks) against simulated
Huawei modules: identify, read stored SMS, send an SMS to another module's SIM.
Skipped only when the gammu binary is absent."""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from goip_tw.modem import pdu
from goip_tw.simulator import Network

from .test_gammu import GAMMU, gammurc, registered, run_gammu

pytestmark = pytest.mark.skipif(GAMMU is None, reason="gammu is not installed (apt-get install gammu)")


@pytest.fixture
def network():
    net = Network(reactor, reg_delay=0.2, boot_delay=0.05)
    net.add_module("huawei", 2)
    net.add_module("huawei", 2)
    net.start()
    yield net
    net.stop()


@pytest_twisted.inlineCallbacks
def test_gammu_identify_huawei(network, tmp_path):
    yield registered(network)
    module = network.modules[0]
    out, err, code = yield run_gammu(gammurc(tmp_path, module), "identify")
    text = out.decode()
    assert code == 0, (text, err)
    assert f"IMEI                 : {module.imei}" in text
    assert f"SIM IMSI             : {module.sim.imsi}" in text
    assert "ME909s-120" in text and "uawei" in text


@pytest_twisted.inlineCallbacks
def test_gammu_sendsms_and_getallsms_between_huawei_modules(network, tmp_path):
    yield registered(network)
    sender, receiver = network.modules
    out, err, code = yield run_gammu(gammurc(tmp_path, sender), "sendsms", "TEXT",
                                     receiver.sim.msisdn, "-text", "hi from a huawei")
    assert code == 0, (out, err)
    yield deferLater(reactor, 0.1, lambda: None)
    stored = receiver.sim.store.listing(4)
    assert [pdu.decode(m.pdu).text for m in stored] == ["hi from a huawei"]
    out, err, code = yield run_gammu(gammurc(tmp_path, receiver), "getallsms")
    assert code == 0, (out, err)
    assert f'Remote number        : "{sender.sim.msisdn}"' in out.decode()
    assert "hi from a huawei" in out.decode()
