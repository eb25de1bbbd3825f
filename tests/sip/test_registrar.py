"""Embedded proxy registrar (F-415): bindings, expiry, limits, one-password auth."""

from twisted.internet.task import Clock

from goip_tw.sip.message import Request
from goip_tw.sip.registrar import Registrar
from goip_tw.sip.transport import Address


class Verifier:
    """'ok' when Authorization names a user, else 'missing'."""

    def verify(self, request, source):
        auth = request.headers.get("authorization")
        if auth is None:
            return "missing", None
        if auth == "locked":
            return "locked", None
        return "ok", auth


def challenge(request, proxy, source):
    resp = request.make_response(407 if proxy else 401, to_tag="t")
    resp.headers.add("WWW-Authenticate", 'Digest realm="goip", nonce="n"')
    return resp


class Txn:
    def __init__(self, request, source):
        self.request, self.source, self.responses = request, source, []

    def respond(self, response):
        self.responses.append(response)


def register(user, contact="<sip:{u}@127.0.0.1:5090>", expires="60", auth=True,
             port=5090, cseq=1):
    req = Request("REGISTER", "sip:127.0.0.1")
    req.headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKx{cseq}")
    req.headers.add("From", f"<sip:{user}@127.0.0.1>;tag=a")
    req.headers.add("To", f"<sip:{user}@127.0.0.1>")
    req.headers.add("Call-ID", f"c-{user}")
    req.headers.add("CSeq", f"{cseq} REGISTER")
    if contact:
        req.headers.add("Contact", contact.format(u=user))
    if expires is not None:
        req.headers.add("Expires", expires)
    if auth:
        req.headers.add("Authorization", auth if isinstance(auth, str) else user)
    return Txn(req, Address("udp", "127.0.0.1", port))


def make(clock):
    return Registrar(clock, Verifier(), challenge, max_expires=600, max_users=2)


def test_challenge_then_register_and_expire():
    clock = Clock()
    reg = make(clock)
    txn = register("101", auth=False)
    reg.handle_register(txn)
    assert txn.responses[0].status == 401
    txn = register("101")
    reg.handle_register(txn)
    assert txn.responses[0].status == 200
    assert "expires=60" in txn.responses[0].headers.get("contact")
    assert reg.lookup("101").contact.port == 5090
    assert reg.is_client("127.0.0.1", 5090) and reg.users == ["101"]
    clock.advance(61)
    assert reg.lookup("101") is None and not reg.is_client("127.0.0.1")


def test_unregister_star_and_expires_zero():
    clock = Clock()
    reg = make(clock)
    reg.handle_register(register("101"))
    txn = register("101", contact="*", expires="0", cseq=2)
    reg.handle_register(txn)
    assert txn.responses[0].status == 200 and reg.lookup("101") is None
    reg.handle_register(register("102"))
    reg.handle_register(register("102", contact="<sip:{u}@127.0.0.1:5090>;expires=0",
                                 expires=None, cseq=2))
    assert reg.lookup("102") is None


def test_bad_requests_and_limits():
    clock = Clock()
    reg = make(clock)
    txn = register("101", expires="5")
    reg.handle_register(txn)
    assert txn.responses[0].status == 423
    assert txn.responses[0].headers.get("min-expires") == "30"
    txn = register("101", contact="<sip:broken")
    reg.handle_register(txn)
    assert txn.responses[0].status == 400
    txn = register("101", contact="*", expires="60")
    reg.handle_register(txn)
    assert txn.responses[0].status == 400
    # one may only register one's own name
    txn = register("101", auth="102")
    reg.handle_register(txn)
    assert txn.responses[0].status == 403
    txn = register("101", auth="locked")
    reg.handle_register(txn)
    assert txn.responses[0].status == 403
    # expiry is capped, user table is bounded
    txn = register("a", expires="99999")
    reg.handle_register(txn)
    assert "expires=600" in txn.responses[0].headers.get("contact")
    reg.handle_register(register("b"))
    txn = register("c")
    reg.handle_register(txn)
    assert txn.responses[0].status == 503 and reg.users == ["a", "b"]
    clock.advance(601)
    assert reg.users == []
