"""GoIP send.html / send_status.xml over real HTTP on 127.0.0.1 (treq) against the real queue."""

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.server import Site
from twisted.internet.task import Clock

from goip_tw.sms.http_api import GoipHttpApi
from goip_tw.sms.queue import QueueSettings, SmsQueue
from tests.sms.fakes import FakeLine, cms, make_store, settle


@pytest.fixture
def env(tmp_path, monkeypatch):
    store = make_store(tmp_path / "h.sqlite", reactor, monkeypatch)
    clock = Clock()
    net = []
    lines = [FakeLine(1, net), FakeLine(2, net)]
    queue = SmsQueue(store, clock, settings=QueueSettings(retries=0))
    for line in lines:
        queue.add_line(line)
    pytest_twisted.blockon(queue.startService())
    api = GoipHttpApi(queue, lambda u, p: (u, p) == ("sms", "s3cret"), clock, lambda: 2)
    port = reactor.listenTCP(0, Site(api.app.resource()), interface="127.0.0.1")
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    global URL, ROOT
    ROOT = f"http://127.0.0.1:{port.getHost().port}/"
    URL = ROOT + "default/en_US/"
    yield store, clock, queue, http, net, lines
    pytest_twisted.blockon(port.stopListening())
    queue.stopService()
    pytest_twisted.blockon(store.stop())


URL = ROOT = ""


@pytest_twisted.inlineCallbacks
def test_send_and_status(env):
    store, clock, queue, http, net, lines = env
    r = yield http.get(URL + "send.html", params={"u": "sms", "p": "s3cret", "l": "2",
                                                   "n": "+4915550001", "m": "Grüße 😀"})
    body = (yield r.text())
    assert r.code == 200 and body.startswith("Sending,L2 Send SMS to:+4915550001; ID:")
    yield settle(store, clock)
    lines[0].errors = [cms(500)]
    queue.remove_line(2)
    r = yield http.get(URL + "send.html", params={"u": "sms", "p": "s3cret", "l": "1",
                                                   "n": "+4915550002", "m": "x"})
    assert r.code == 200
    yield settle(store, clock)
    assert [(n[0], n[2]) for n in net] == [(2, "Grüße 😀")]
    r = yield http.get(URL + "send_status.xml", params={"u": "sms", "p": "s3cret"})
    xml = yield r.text()
    assert "<status2>DONE</status2>" in xml and "<status1>ERROR</status1>" in xml
    assert "<error1>+CMS ERROR: 500 test</error1>" in xml


@pytest_twisted.inlineCallbacks
def test_refusals(env):
    store, clock, queue, http, net, lines = env
    r = yield http.get(URL + "send.html", params={"u": "sms", "p": "bad", "n": "1", "m": "x"})
    assert r.code == 401
    base = {"u": "sms", "p": "s3cret"}
    for params, code in (({"l": "9", "n": "123", "m": "x"}, 400),
                         ({"l": "x;rm", "n": "123", "m": "x"}, 400),
                         ({"n": "", "m": "x"}, 400), ({"n": "12345", "m": ""}, 400),
                         ({"n": "abc$(reboot)", "m": "x"}, 400)):
        r = yield http.get(URL + "send.html", params={**base, **params})
        assert r.code == code, params
        assert (yield r.text()).startswith("ERROR,")
    r = yield http.get(ROOT + "en_US/send.html?u=sms&p=s3cret&n=123&m=%FF")
    assert r.code == 400
    r = yield http.get(URL + "send_status.xml", params={"u": "x", "p": "y"})
    assert r.code == 401
    yield settle(store, clock)
    assert net == []
