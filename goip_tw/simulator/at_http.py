"""Quectel and SIMCom HTTP(S) test commands without any real network.

``AT+QHTTPURL=<len>[,<timeout>]`` answers ``CONNECT`` and reads exactly
``<len>`` bytes of URL; ``AT+QHTTPGET[=<timeout>]`` answers ``OK`` and later
``+QHTTPGET: <err>,<status>[,<length>]``; ``AT+QHTTPREAD`` prints ``CONNECT``,
the body, ``OK`` and ``+QHTTPREAD: <err>`` (Quectel EC2x HTTP(S) AT Commands
Manual).  Statuses come from ``network.http_responses`` (default 200) so the
gateway's data path test (F-509) has something to fetch.  SIMCom's
``AT+HTTPINIT``, ``AT+HTTPPARA="URL",...``, ``AT+HTTPACTION=0`` (URC
``+HTTPACTION: <method>,<status>,<length>``), ``AT+HTTPREAD?`` (``+HTTPREAD:
LEN,<length>``), ``AT+HTTPREAD=<offset>,<size>`` (``OK`` then ``+HTTPREAD:
DATA,<n>``, the bytes, ``+HTTPREAD: 0``) and ``AT+HTTPTERM`` follow the
SIM7500/SIM7600/SIM7800 Series HTTP(S) AT Command Manual; module-side failures
come as 7xx codes in the ``<statuscode>`` place (709 network error when not
registered).  A URL configured with status ``None`` is a server that never
answers: no result URC at all, so the gateway's own timeout is what ends the test.
"""

from __future__ import annotations

from .at import AtError, command

Q = ("quectel",)
S = ("simcom",)
DEFAULT_BODY = "<html><body>goip-tw simulator</body></html>"


@command("+QHTTPCFG", dialects=Q)
def qhttpcfg(module, cmd):
    return []


@command("+QHTTPURL", dialects=Q)
def qhttpurl(module, cmd):
    if cmd.kind == "read":
        return [f'+QHTTPURL: "{module.settings.http_url}"'] if module.settings.http_url else []
    if cmd.kind != "set":
        raise AtError(50)
    length = cmd.int_param(0, lo=1, hi=700)

    def got(url: str):
        if not url.lower().startswith(("http://", "https://")):
            raise AtError(50)
        module.settings.http_url = url
        return []

    return module.prompt(got, marker=b"\r\nCONNECT\r\n", length=length)


@command("+QHTTPGET", dialects=Q)
def qhttpget(module, cmd):
    url = module.settings.http_url
    if not url:
        raise AtError(50)
    _get(module, url, "+QHTTPGET: 717",
         lambda status, length: f"+QHTTPGET: 0,{status},{length}")
    return []


@command("+QHTTPREAD", dialects=Q)
def qhttpread(module, cmd):
    body = module.http_body
    if body is None:
        raise AtError(50)
    module.timers.later(0, module.urc, "+QHTTPREAD: 0")
    return ["CONNECT", body]


def _get(module, url: str, no_network_urc: str, result_urc) -> None:
    """Run the simulated GET and report it later the way the dialect does:
    ``no_network_urc`` without registration, ``result_urc(status, length)`` after the
    configured answer; a URL configured with status None never answers."""
    module.http_body = None
    if not module.registered:
        module.timers.later(1.0, module.urc, no_network_urc)
        return
    status, body = module.network.http_responses.get(url, (200, DEFAULT_BODY))
    module.network.record("http", module=module.number, url=url, status=status)
    if status is None:
        return
    module.http_body = body
    module.timers.later(0.5, module.urc, result_urc(status, len(body.encode())))


@command("+HTTPINIT", dialects=S)
def httpinit(module, cmd):
    if module.http_session:
        raise AtError()
    module.http_session = True
    return []


@command("+HTTPTERM", dialects=S)
def httpterm(module, cmd):
    if not module.http_session:
        raise AtError()
    module.http_session = False
    module.http_body = None
    return []


@command("+HTTPPARA", dialects=S)
def httppara(module, cmd):
    if not module.http_session:
        raise AtError()
    key = cmd.str_param(0).upper()
    if key == "URL":
        url = cmd.str_param(1)
        if not url.lower().startswith(("http://", "https://")):
            raise AtError(50)
        module.settings.http_url = url
    return []


@command("+HTTPACTION", dialects=S)
def httpaction(module, cmd):
    if not module.http_session or not module.settings.http_url:
        raise AtError()
    method = cmd.int_param(0, lo=0, hi=4)
    _get(module, module.settings.http_url, f"+HTTPACTION: {method},709,0",
         lambda status, length: f"+HTTPACTION: {method},{status},{length}")
    return []


@command("+HTTPREAD", dialects=S)
def httpread(module, cmd):
    body = module.http_body
    if body is None:
        raise AtError()
    data = body.encode()
    if cmd.kind == "read":
        return [f"+HTTPREAD: LEN,{len(data)}"]
    if cmd.kind != "set":
        raise AtError()
    offset = cmd.int_param(0, lo=0, hi=len(data))
    size = cmd.int_param(1, lo=1, hi=1024)
    chunk = data[offset:offset + size].decode(errors="replace")
    module.timers.later(0, module.urc, f"+HTTPREAD: DATA,{len(chunk.encode())}", chunk,
                        "+HTTPREAD: 0")
    return []
