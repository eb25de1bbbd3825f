"""SIP transport and timer settings (SPEC F-420, F-423, F-426, F-428, F-431).

Registration accounts, routing and admission live in the upper SIP layer's own
section; this one covers what ``goip_tw.sip.transport`` and
``goip_tw.sip.transaction`` need.
"""

from __future__ import annotations

from goip_tw.config.schema import section, setting

REPLY_PATHS = ("via", "source")
KEEPALIVE_MODES = ("off", "crlf", "options")


def _check_port_range(value: str) -> None:
    lo, dash, hi = value.partition("-")
    if not dash or not lo.strip().isdigit() or not hi.strip().isdigit():
        raise ValueError(f"expected 'low-high', got {value!r}")
    lo_i, hi_i = int(lo), int(hi)
    if not 1024 <= lo_i <= hi_i <= 65535:
        raise ValueError(f"range {value!r} must lie within 1024-65535, low <= high")


@section("sip")
class SipConfig:
    """Where the gateway listens for SIP and how its transactions time out."""

    bind_address: str = setting("0.0.0.0", label="SIP listen address")
    local_port: int = setting(5060, label="SIP local port", min=0, max=65535,
                              help="0 picks a random port in the random port range.",
                              feature="F-420")
    random_port_range: str = setting("20000-40000", label="Random SIP port range",
                                     check=_check_port_range, feature="F-420")
    udp: bool = setting(True, label="SIP over UDP", feature="F-202")
    tcp: bool = setting(True, label="SIP over TCP", feature="F-202")
    tls: bool = setting(False, label="SIP over TLS", feature="F-428")
    tls_port: int = setting(5061, label="SIP TLS port", min=0, max=65535,
                            help="0 uses the SIP port + 1.", feature="F-428")
    tls_certificate: str = setting("", label="TLS certificate (PEM)", feature="F-428")
    tls_private_key: str = setting("", label="TLS private key (PEM)", secret=True,
                                   feature="F-428")
    tls_verify_peer: bool = setting(True, label="Verify TLS servers",
                                    help="Check certificates of servers we connect to.",
                                    feature="F-428")
    tls_ca_file: str = setting("", label="TLS CA bundle (PEM)", feature="F-428")
    dscp: int = setting(26, label="Signalling QoS (DSCP)", min=0, max=63,
                        feature="F-428")
    reply_path: str = setting("via", label="SIP reply path", choices=REPLY_PATHS,
                              help="Send responses to the Via header's address "
                                   "(RFC 3261 §18.2.2, RFC 3581) or to the packet "
                                   "source.", feature="F-423")
    keepalive_mode: str = setting("crlf", label="NAT keep-alive", choices=KEEPALIVE_MODES,
                                  feature="F-426")
    keepalive_interval: int = setting(30, label="NAT keep-alive interval", unit="s",
                                      min=5, max=3600, feature="F-426")
    t1: float = setting(0.5, label="Timer T1", unit="s", min=0.1, max=10.0,
                        help="RTT estimate, RFC 3261 §17.1.1.1.", feature="F-431")
    t2: float = setting(4.0, label="Timer T2", unit="s", min=1.0, max=60.0,
                        help="Maximum retransmit interval for non-INVITE requests "
                             "and INVITE responses.", feature="F-431")
    t4: float = setting(5.0, label="Timer T4", unit="s", min=1.0, max=60.0,
                        feature="F-431")
    nict_timeout: float = setting(32.0, label="NICT timeout (Timer F)", unit="s",
                                  min=1.0, max=300.0, help="RFC 3261 §17.1.2 (64*T1).",
                                  feature="F-431")
    ict_timeout: float = setting(32.0, label="ICT timeout (Timer B)", unit="s",
                                 min=1.0, max=300.0, help="RFC 3261 §17.1.1 (64*T1).",
                                 feature="F-431")
    user_agent: str = setting("goip-tw", label="User-Agent / Server header")


    def __attrs_post_init__(self):
        if self.t2 < self.t1:
            raise ValueError("t2 must not be smaller than t1")

    def random_ports(self) -> tuple[int, int]:
        lo, _, hi = self.random_port_range.partition("-")
        return int(lo), int(hi)

