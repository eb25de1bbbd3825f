"""RFC 3261 §12 dialogs, plus the checks every UAS core makes (§8.2).

Public API (stable):

- ``Dialog(call_id, local, remote, remote_target, route_set, local_cseq, transport)``
  — the same constructor and ``request(method, contact)`` / ``destination()`` as
  the small record in ``ua.py``, so it drops in.  Built from messages with
  ``Dialog.from_uac(request, response)`` (§12.1.2: route set = reversed
  Record-Route, target = response Contact) or ``Dialog.from_uas(request,
  local_tag)`` (§12.1.1).  ``request()`` handles loose *and* strict routing
  (§12.2.1.1); ``ack(invite, response)`` builds the ACK for a 2xx (§13.2.2.4);
  ``check_incoming(request)`` applies §12.2.2 (CSeq order, target refresh) and
  returns an error ``Response`` or ``None``; ``session_direction`` tracks hold.
- ``DialogTable``: dialogs by ``(call_id, local_tag, remote_tag)``;
  ``match(request)`` finds the dialog of an in-dialog request;
  ``reject_unknown(txn)`` answers 481 (§12.2.2) for requests with a To tag that
  match nothing.
- ``check_request(request, allow, supported) -> Response | None``: 416 for URI
  schemes we do not serve, 420 + Unsupported for Require, 405 + Allow for
  methods we do not implement, 415 for bodies other than SDP on INVITE, 406 when
  Accept rules out SDP (§8.2.1-§8.2.3, RFC 4475 §3.3).
- ``hold_direction(sdp)`` / ``is_hold(sdp)``: a re-INVITE offer with
  ``a=sendonly`` / ``a=inactive`` or a 0.0.0.0 connection (RFC 3264 §8.4).
"""

from __future__ import annotations

import attrs

from goip_tw.sip.message import NameAddr, Request, Response, SipParseError, SipURI
from goip_tw.sip.sdp import offered_direction
from goip_tw.sip.transport import Address

DEFAULT_ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "MESSAGE",
                 "UPDATE", "NOTIFY", "REFER")


def uri_address(uri: SipURI, transport: str = "udp") -> Address:
    """Where a request for ``uri`` goes when it names an IP (names: ``SipResolver``)."""
    transport = (uri.param("transport") or transport).lower()
    host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
    port = uri.port or (5061 if transport == "tls" or uri.scheme == "sips" else 5060)
    return Address(transport, host, port)


@attrs.define
class Dialog:
    call_id: str
    local: NameAddr
    remote: NameAddr
    remote_target: SipURI
    route_set: list
    local_cseq: int
    transport: str = "udp"
    remote_cseq: int | None = None
    secure: bool = False
    session_direction: str = "sendrecv"

    # -- creation --------------------------------------------------------

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> "Dialog":
        """§12.1.2: a 2xx/101-199 with a To tag answering our INVITE."""
        routes = list(reversed(response.headers.get_all("record-route")))
        contact = response.headers.get("contact")
        target = NameAddr.parse(contact, "contact").uri if contact else request.uri
        return cls(request.call_id, request.from_, response.to, target, routes,
                   request.cseq[0], request.uri.transport
                   if isinstance(request.uri, SipURI) else "udp",
                   secure=request.uri.scheme == "sips")

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, transport: str = "udp") -> "Dialog":
        """§12.1.1: we answered ``request`` with a To tag ``local_tag``."""
        routes = list(request.headers.get_all("record-route"))
        contact = request.headers.get("contact")
        if contact is None:
            raise SipParseError("contact", "dialog-creating request without Contact")
        return cls(request.call_id, request.to.with_tag(local_tag), request.from_,
                   NameAddr.parse(contact, "contact").uri, routes, 0, transport,
                   remote_cseq=request.cseq[0],
                   secure=request.uri.scheme == "sips")

    # -- identity --------------------------------------------------------

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    @property
    def id(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    # -- requests within the dialog --------------------------------------

    def _routing(self) -> tuple[SipURI, list[str]]:
        """Request-URI and Route headers (§12.2.1.1, loose or strict routing)."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0], "route")
        if first.uri.param("lr", False) is not False:
            return self.remote_target, list(self.route_set)
        # strict router: it gets the Request-URI, the target goes last
        routes = list(self.route_set[1:]) + [f"<{self.remote_target}>"]
        return first.uri, routes

    def _new(self, method: str, cseq: int) -> Request:
        ruri, routes = self._routing()
        req = Request(method, ruri)
        h = req.headers
        for r in routes:
            h.add("route", r)
        h.add("max-forwards", "70")
        h.add("from", str(self.local))
        h.add("to", str(self.remote))
        h.add("call-id", self.call_id)
        h.add("cseq", f"{cseq} {method}")
        return req

    def request(self, method: str, contact: str | None = None, body: bytes = b"",
                content_type: str | None = None) -> Request:
        """A new in-dialog request with the next CSeq (ACK and CANCEL excepted)."""
        if method not in ("ACK", "CANCEL"):
            self.local_cseq += 1
        req = self._new(method, self.local_cseq)
        if contact is not None:
            req.headers.add("contact", contact)
        if body:
            req.headers.add("content-type", content_type or "application/sdp")
            req.body = body
        return req

    def ack(self, invite: Request, response: Response) -> Request:
        """ACK for a 2xx (§13.2.2.4): the INVITE's CSeq number, its credentials."""
        ack = self._new("ACK", invite.cseq[0])
        for name in ("authorization", "proxy-authorization"):
            for v in invite.headers.get_all(name):
                ack.headers.add(name, v)
        return ack

    def destination(self) -> Address:
        if self.route_set:
            first = NameAddr.parse(self.route_set[0], "route")
            return uri_address(first.uri, self.transport)
        return uri_address(self.remote_target, self.transport)

    def check_incoming(self, request: Request) -> Response | None:
        """§12.2.2: CSeq must grow; a target refresh updates the remote target."""
        num = request.cseq[0]
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_cseq is not None and num <= self.remote_cseq:
                return request.make_response(500, "Server Internal Error (CSeq out "
                                             "of order)", to_tag=self.local_tag)
            self.remote_cseq = num
        if request.method in ("INVITE", "UPDATE") and request.headers.get("contact"):
            try:
                self.remote_target = NameAddr.parse(
                    request.headers.get("contact"), "contact").uri
            except SipParseError:
                return request.make_response(400, "Bad Request (contact)",
                                             to_tag=self.local_tag)
        if request.method == "INVITE" and request.body:
            self.session_direction = hold_direction(request.body)
        return None


class DialogTable:
    """The dialogs of one UA core, looked up by in-dialog requests."""

    def __init__(self):
        self._dialogs: dict[tuple[str, str, str], object] = {}

    def add(self, dialog: Dialog, owner=None) -> None:
        self._dialogs[dialog.id] = owner if owner is not None else dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def match(self, request: Request):
        """The dialog (or its owner) for an in-dialog request, else None."""
        try:
            to_tag = request.to.tag
            from_tag = request.from_.tag
        except SipParseError:
            return None
        if not to_tag:
            return None
        return self._dialogs.get((request.call_id, to_tag, from_tag or ""))

    def reject_unknown(self, txn) -> bool:
        """481 for a request with a To tag that matches no dialog (§12.2.2)."""
        req = txn.request
        if req.method == "ACK":
            return True
        txn.respond(req.make_response(481))
        return True

    def __len__(self) -> int:
        return len(self._dialogs)


def check_request(request: Request, allow=DEFAULT_ALLOW,
                  supported=("replaces", "timer")) -> Response | None:
    """The UAS checks of §8.2 that precede any method-specific processing."""
    if request.method not in allow:
        resp = request.make_response(405)
        resp.headers.add("allow", ", ".join(allow))
        return resp
    scheme = request.uri.scheme
    if scheme not in ("sip", "sips", "tel"):
        return request.make_response(416)
    required = [r.strip().lower() for r in request.headers.get_all("require")]
    missing = [r for r in required if r and r not in supported]
    if missing and request.method not in ("CANCEL", "ACK"):
        resp = request.make_response(420)
        resp.headers.add("unsupported", ", ".join(missing))
        return resp
    if request.method == "INVITE":
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if request.body and ctype not in ("application/sdp", ""):
            resp = request.make_response(415)
            resp.headers.add("accept", "application/sdp")
            return resp
        accept = [a.split(";")[0].strip().lower()
                  for a in request.headers.get_all("accept")]
        if accept and not any(a in ("application/sdp", "application/*", "*/*")
                              for a in accept):
            resp = request.make_response(406)
            resp.headers.add("accept", "application/sdp")
            return resp
    return None


def hold_direction(sdp: bytes) -> str:
    """The offered audio direction: sendonly/inactive/recvonly/sendrecv (RFC 3264 §8.4)."""
    return offered_direction(sdp)


def is_hold(sdp: bytes) -> bool:
    return hold_direction(sdp) in ("sendonly", "inactive")
