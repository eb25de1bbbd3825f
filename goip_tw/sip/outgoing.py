"""Gateway-originated SIP: calls to the VoIP side and MESSAGE out (mixin of SipService).

``place_call`` (GSM -> VoIP, F-463, caller ID per F-461) and ``send_message``
(F-496) pick the account of the line, resolve the target (a SIP URI, ``user@host``,
a softphone registered at the embedded proxy, or a bare number for the account's
proxy/registrar or trunk gateway 1) and answer digest challenges with that
account's credentials.  The API is documented in ``goip_tw.sip.ua``.
"""

from __future__ import annotations

from twisted.internet import defer

from goip_tw.sip import ua as ua_mod
from goip_tw.sip.message import NameAddr, Request, SipParseError, SipURI
from goip_tw.sip.registration import host_port
from goip_tw.sip.transport import Address


class Originator:
    """Needs ``voip``, ``plans``, ``registrations``, ``registrar``, ``transport``,
    ``transactions``, ``ua``."""

    def _target(self, target: str, account_key: str):
        """(request URI, destination Address, account) for a target string."""
        acct = self._account(account_key)
        text = target.strip()
        if text.startswith(("sip:", "sips:")):
            uri = SipURI.parse(text)
        elif "@" in text:
            uri = SipURI.parse("sip:" + text)
        else:
            binding = self.registrar.lookup(text) if self.registrar is not None else None
            if binding is not None:
                return binding.contact, binding.source, acct
            server = (self.voip.trunk_gateway1 if self.voip.mode == "trunk"
                      else acct.proxy or acct.registrar)
            reg = self.registrations.get(account_key)
            if reg is not None and reg.current != 0 and reg.server:
                server = reg.server          # failed over: calls follow (manual §4.3)
            if not server:
                raise ValueError(f"no server to send {text!r} to")
            host, port = host_port(server)
            uri = SipURI.parse(f"sip:{text}@{host}" + (f":{port}" if port != 5060 else "")
                               + (f";transport={acct.transport}" if acct.transport != "udp"
                                  else ""))
        dest = ua_mod.uri_address(uri)
        if acct.outbound_proxy:
            ohost, oport = host_port(acct.outbound_proxy)
            dest = Address(acct.transport, ohost, oport)
        return uri, dest, acct

    def _account(self, key: str):
        for plan in self.plans:
            if plan.key == key:
                return plan.account
        return self.voip.account

    def account_for_line(self, line: int | None) -> str:
        for plan in self.plans:
            if line is None or line in plan.lines:
                return plan.key
        return "main"

    def place_call(self, target: str, *, caller: str = "", caller_display: str = "",
                   line: int | None = None, local_sdp: bytes = b"",
                   caller_id_mode: str = "from") -> ua_mod.OutboundLeg:
        """GSM -> VoIP: INVITE ``target`` (see ``goip_tw.sip.ua``)."""
        key = self.account_for_line(line)
        uri, dest, acct = self._target(target, key)
        domain = acct.home_domain or (host_port(acct.registrar)[0] if acct.registrar
                                      else self.transport.sent_by("udp")[0])
        user, display, extra = ua_mod.caller_id_headers(
            caller_id_mode, caller, caller_display, acct.user or "gw", domain)
        from_ = NameAddr(uri=SipURI(host=domain, user=user), display=display or None)
        if acct.outbound_proxy:
            ohost, oport = host_port(acct.outbound_proxy)
            extra = [("Route", f"<sip:{ohost}:{oport};lr>")] + list(extra)
        creds = (acct.auth_id, acct.password) if acct.auth_id and acct.password else None
        return self.ua.call(target=uri, dest=dest, account=key, line=line, from_=from_,
                            local_sdp=local_sdp, extra_headers=extra, credentials=creds)

    def send_message(self, target: str, body: bytes, *, from_user: str | None = None,
                     content_type: str = "text/plain;charset=UTF-8",
                     line: int | None = None) -> defer.Deferred:
        """SIP MESSAGE (F-496); Deferred[int] with the final status code."""
        key = self.account_for_line(line)
        try:
            uri, dest, acct = self._target(target, key)
        except (ValueError, SipParseError) as e:
            return defer.fail(e)
        domain = acct.home_domain or (host_port(acct.registrar)[0] if acct.registrar
                                      else self.transport.sent_by("udp")[0])
        req = Request("MESSAGE", uri)
        h = req.headers
        h.add("Max-Forwards", "70")
        h.add("From", str(NameAddr(uri=SipURI(host=domain, user=from_user or acct.user or "gw"))
                          .with_tag(self.transactions.new_tag())))
        h.add("To", str(NameAddr(uri=uri)))
        h.add("Call-ID", f"{self.transactions.new_branch()[7:]}@{dest.host}")
        h.add("CSeq", "1 MESSAGE")
        if acct.outbound_proxy:
            ohost, oport = host_port(acct.outbound_proxy)
            h.add("Route", f"<sip:{ohost}:{oport};lr>")
        h.add("Content-Type", content_type)
        req.body = body
        d = self.transactions.send_request(req, dest)

        def answered(resp):
            if resp.status in (401, 407) and acct.auth_id and acct.password:
                retry = self.ua.authorized_retry(req, resp, acct.auth_id, acct.password)
                if retry is not None:
                    return self.transactions.send_request(retry, dest).addCallback(
                        lambda r: r.status)
            return resp.status

        return d.addCallback(answered)
