"""The gateway's SIP stack, in layers (each only uses the ones above it).

Core (RFC wire formats and timers, no gateway policy):

- ``uri``, ``message``: values and messages, bytes on the wire (RFC 3261 §7, §20, §25).
- ``sdp``: session descriptions and RFC 3264 offer/answer.
- ``transport``: UDP/TCP/TLS sockets, reply paths, keep-alive; ``resolver``: SRV/A.
- ``timers``, ``transaction``, ``client_transaction``: RFC 3261 §17 transactions
  on an injected clock.
- ``dialog``: §12 dialogs and the §8.2 UAS checks.
- ``auth``: digest client and server (RFC 3261 §22, RFC 7616, RFC 8760).

Upper layer (gateway policy on top): ``registration``, ``registrar``, ``ua``,
``admission``, ``routing``, ``service``.
"""
