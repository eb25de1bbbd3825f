"""The /sms/ JSON API (inbox/outbox F-506, USSD F-504, own numbers F-510) through
treq's StubTreq on the real Klein resource: auth levels, paging, bad input."""

import base64
import json

import pytest_twisted
from treq.testing import StubTreq
from twisted.internet import defer, reactor, task
from twisted.web.resource import Resource

from goip_tw.config.files import parse
from goip_tw.modem.model import UssdReply
from goip_tw.sms.inbound import ReceivedPart
from goip_tw.sms.inbound_service import InboundService
from tests.sms.inbound_support import store  # noqa: F401
from tests.sms.test_inbound_service import FakeGateway

ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:Adm1n").decode()}
SMS_USER = {"Authorization": "Basic " + base64.b64encode(b"sms:smspw").decode()}
WRONG = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
BASE = "http://gw/sms"


class Modem:
    def ussd(self, code):
        return defer.succeed(UssdReply(1, "Main menu\n1. Balance"))

    def ussd_reply(self, answer):
        return defer.succeed(UssdReply(0, "Your number is +15550001."))

    def ussd_cancel(self):
        return defer.succeed(None)


@defer.inlineCallbacks
def setup(store, tmp_path):
    cfg = parse({"users": {"admin_password": "Adm1n", "sms_enabled": True,
                           "sms_password": "smspw"},
                 "sms_inbound": {"own_number_ussd_code": "*101#",
                                 "own_number_ussd_phrase": "Your number is"}})
    gw = FakeGateway(store, tmp_path, cfg)
    for line in gw.subs["modems"].lines:
        line.modem = Modem()
    svc = InboundService(gw)
    yield svc.startService()
    for i in range(5):
        yield svc.inbound.part_received(ReceivedPart(line=1 + i % 2, sender=f"+{i}",
                                                     text=f"t{i} 😀", scts=str(i)))
    root = Resource()  # mounted as goip_tw/web/service.py does: /sms/ -> our app
    root.putChild(b"sms", svc.web_resources()["sms"])
    return svc, StubTreq(root)


@defer.inlineCallbacks
def settle(client, d):
    """StubTreq delivers a response that a resource finished later (our store
    answers from its thread) only on flush(): flush until it arrived (bounded)."""
    arrived = []

    def note(result):
        arrived.append(True)
        return result

    d.addBoth(note)
    for _ in range(1000):
        client.flush()
        if arrived:
            break
        yield task.deferLater(reactor, 0.005, lambda: None)
    return (yield d)


@defer.inlineCallbacks
def call(client, method, path, headers=ADMIN, body=None, data=None):
    kw = {"headers": headers}
    if body is not None:
        kw["data"] = json.dumps(body).encode()
    if data is not None:
        kw["data"] = data
    resp = yield settle(client, getattr(client, method)(BASE + path, **kw))
    content = yield settle(client, resp.content())
    try:
        return resp.code, (json.loads(content) if content else None)
    except ValueError:
        return resp.code, content


@pytest_twisted.inlineCallbacks
def test_inbox_paging_and_levels(store, tmp_path):
    svc, client = yield setup(store, tmp_path)
    code, page = yield call(client, "get", "/inbox?limit=2", headers=SMS_USER)
    assert code == 200 and [e["text"] for e in page["entries"]] == ["t4 😀", "t3 😀"]
    code, page = yield call(client, "get", f"/inbox?limit=2&before={page['next_before']}")
    assert [e["peer"] for e in page["entries"]] == ["+2", "+1"]
    code, page = yield call(client, "get", "/inbox?line=2")
    assert {e["line"] for e in page["entries"]} == {2} and page["next_before"] is None
    assert (yield call(client, "get", "/inbox", headers={}))[0] == 401
    assert (yield call(client, "get", "/inbox", headers=WRONG))[0] == 401
    assert (yield call(client, "delete", "/inbox?line=1", headers=SMS_USER))[0] == 403
    code, out = yield call(client, "delete", "/inbox?line=1")
    assert code == 200 and out == {"deleted": 3}
    code, out = yield call(client, "delete", "/outbox")
    assert out == {"deleted": 0}
    svc.stopService()


@pytest_twisted.inlineCallbacks
def test_bad_input_names_the_field(store, tmp_path):
    svc, client = yield setup(store, tmp_path)
    for path, field in [("/inbox?line=x", "line"), ("/inbox?limit=999", "limit"),
                        ("/inbox?before=-1", "before")]:
        code, out = yield call(client, "get", path)
        assert code == 400 and out["field"] == field, path
    code, out = yield call(client, "post", "/ussd", body={"lines": [0], "code": "*100#"})
    assert code == 400 and out["field"] == "lines"
    code, out = yield call(client, "post", "/ussd", body={"lines": [1]})
    assert code == 400 and out["field"] == "code"
    code, out = yield call(client, "post", "/ussd", data=b"{not json")
    assert code == 400 and out["field"] == "body"
    assert (yield call(client, "get", "/trash"))[0] == 404
    svc.stopService()


@pytest_twisted.inlineCallbacks
def test_ussd_session_over_http(store, tmp_path):
    svc, client = yield setup(store, tmp_path)
    code, out = yield call(client, "post", "/ussd", body={"lines": [1, 2], "code": "*111#"})
    assert code == 200 and out["1"]["status"] == "open" and out["2"]["text"].startswith("Main")
    code, out = yield call(client, "post", "/ussd/1/reply", body={"answer": "1"})
    assert out["status"] == "done"
    code, out = yield call(client, "post", "/ussd/2/cancel")
    assert out["status"] == "cancelled"
    code, out = yield call(client, "get", "/ussd")
    assert set(out) == {"1", "2"}
    assert (yield call(client, "post", "/ussd", headers=SMS_USER,
                       body={"lines": [1], "code": "*1#"}))[0] == 403
    svc.stopService()


@pytest_twisted.inlineCallbacks
def test_own_number_discovery_over_http(store, tmp_path):
    class NumberModem(Modem):
        def ussd(self, code):
            return defer.succeed(UssdReply(0, "Your number is +15550001."))

    svc, client = yield setup(store, tmp_path)
    svc.gateway.subs["modems"].lines[0].modem = NumberModem()
    body = {"line": 1, "iccid": "89860012345678901234", "method": "ussd"}
    code, out = yield call(client, "post", "/own-numbers/discover", body=body)
    assert code == 200 and out["number"] == "+15550001"
    code, rows = yield call(client, "get", "/own-numbers")
    assert [(r["iccid"], r["number"], r["method"]) for r in rows] == [
        ("89860012345678901234", "+15550001", "ussd")]
    code, out = yield call(client, "post", "/own-numbers/discover",
                           body={**body, "method": "token"})
    assert code == 409 and "own_number_token_target" in out["error"]
    code, out = yield call(client, "post", "/own-numbers/discover",
                           body={**body, "iccid": "1; DROP"})
    assert code == 400 and out["field"] == "iccid"
    svc.stopService()
