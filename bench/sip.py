"""SIP core benchmark: parser speed, and OPTIONS / REGISTER-with-digest transactions
per second through our full transaction layer versus Kamailio under the same load.

Run: ``.venv/bin/python bench/sip.py [--seconds 5] [--skip-kamailio]``.

- ``sip_parser_invites_per_s``: ``parse_message`` on a 14-header INVITE with SDP
  (start line, framing, Content-Length; headers split lazily), and
  ``sip_parser_full_invites_per_s`` with ``validate()`` (every header split,
  Via/From/To/CSeq parsed).
- The load generator (``bench/sipload.c``, compiled here with ``cc -O2``) keeps a
  window of requests outstanding per process, every request with a fresh branch
  and Call-ID, and counts replies for ``--seconds`` after a 1 s warm-up.
- Our server runs in a child process (one core, the default reactor):
  ``TransportLayer`` + ``TransactionLayer`` (strict validation, server
  transactions with Timer J) + a responder; REGISTER is checked with
  ``DigestServer`` (MD5, qop=auth, the same as Kamailio's default) and stored in a
  dict binding table.  Kamailio (``tests/peers/kamailio/bench.cfg``, one UDP
  worker) answers OPTIONS with ``sl_send_reply`` and REGISTER with
  ``pv_auth_check`` + ``save("location")``.
- Our server is measured twice: with Python's default GC thresholds and with
  ``GC_TUNED`` (what we recommend the gateway process sets).
Prints ``name: value unit`` lines and the ratios.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

USER, PASSWORD = "1001", "s3cret"

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
       b"a=ptime:20\r\n")
INVITE = (b"INVITE sip:13800138000@127.0.0.1:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n"
          b"Max-Forwards: 70\r\nTo: <sip:13800138000@127.0.0.1>\r\n"
          b"From: \"Alice\" <sip:alice@127.0.0.1>;tag=1928301774\r\n"
          b"Call-ID: a84b4c76e66710@127.0.0.1\r\nCSeq: 314159 INVITE\r\n"
          b"Contact: <sip:alice@127.0.0.1:5070>\r\nUser-Agent: bench\r\n"
          b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n"
          b"Supported: replaces, timer\r\nContent-Type: application/sdp\r\n"
          b"Content-Length: %d\r\n\r\n" % len(SDP)) + SDP


def options_template(port: int) -> bytes:
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKXXXXXXXXXXXX;rport\r\n"
            f"Max-Forwards: 70\r\nTo: <sip:127.0.0.1:{port}>\r\n"
            f"From: <sip:bench@127.0.0.1>;tag=b1\r\nCall-ID: XXXXXXXXXXXX@bench\r\n"
            f"CSeq: 1 OPTIONS\r\nUser-Agent: sipload\r\nContent-Length: 0\r\n\r\n").encode()


def register_template(port: int, authorization: str = "") -> bytes:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    return (f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKXXXXXXXXXXXX;rport\r\n"
            f"Max-Forwards: 70\r\nTo: <sip:{USER}@127.0.0.1>\r\n"
            f"From: <sip:{USER}@127.0.0.1>;tag=r1\r\nCall-ID: XXXXXXXXXXXX@bench\r\n"
            f"CSeq: 2 REGISTER\r\nContact: <sip:{USER}@127.0.0.1:5999>;expires=3600\r\n"
            f"{auth}User-Agent: sipload\r\nContent-Length: 0\r\n\r\n").encode()


# ------------------------------------------------------------------ parser


def bench_parser(seconds: float) -> tuple[float, float]:
    from goip_tw.sip.message import parse_message

    def rate(fn):
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(2000):
                fn(INVITE)
            n += 2000
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return n / elapsed

    def full(data):
        parse_message(data).validate()

    return rate(parse_message), rate(full)


# ------------------------------------------------------------------ our server


def serve(kind: str, port: int) -> None:
    """Child process: our stack answering OPTIONS or REGISTER on 127.0.0.1:port."""
    from twisted.internet import reactor

    from goip_tw.config.sections.sip import SipConfig
    from goip_tw.sip.auth import DigestServer
    from goip_tw.sip.transaction import TransactionLayer
    from goip_tw.sip.transport import TransportLayer

    cfg = SipConfig(bind_address="127.0.0.1", local_port=port, tcp=False, dscp=0)
    transport = TransportLayer(reactor, cfg)
    transport.start()
    transport._udp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    layer = TransactionLayer(transport, reactor)
    digest = DigestServer(reactor, realm="127.0.0.1", algorithms=("MD5",))
    passwords = {USER: PASSWORD}
    bindings: dict[str, tuple[str, float]] = {}

    def on_request(txn):
        req = txn.request
        if req.method == "OPTIONS":
            resp = req.make_response(200, to_tag=layer.new_tag())
            resp.headers.add("server", "goip-tw-bench")
            txn.respond(resp)
        elif req.method == "REGISTER":
            outcome, user = digest.verify(req, txn.source, passwords.get)
            if outcome != "ok":
                txn.respond(digest.challenge(req, source=txn.source))
                return
            contact = req.headers.get("contact")
            bindings[user] = (contact, reactor.seconds() + 3600)
            resp = req.make_response(200, to_tag=layer.new_tag())
            resp.headers.add("contact", contact)
            resp.headers.add("server", "goip-tw-bench")
            txn.respond(resp)
        else:
            txn.respond(req.make_response(404, to_tag=layer.new_tag()))

    layer.request_received = on_request
    if os.environ.get("GOIP_BENCH_GC"):
        import gc
        gc.set_threshold(*(int(x) for x in os.environ["GOIP_BENCH_GC"].split(",")))
    print("ready", flush=True)
    reactor.run()


# ------------------------------------------------------------------ helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, data: bytes, timeout: float = 0.3, tries: int = 30) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recv(65535)
            except socket.timeout:
                continue
    return None


def fill(template: bytes, n: int = 1) -> bytes:
    return template.replace(b"XXXXXXXXXXXX", f"{n:012x}".encode())


def authorization_for(port: int) -> str:
    """Fetch a nonce with one unauthenticated REGISTER and answer it (MD5, qop=auth)."""
    from goip_tw.sip.auth import digest_response, parse_auth_header
    from goip_tw.sip.message import parse_message
    reply = ask(port, fill(register_template(port), 0xfffff))
    if reply is None:
        raise RuntimeError(f"no answer to REGISTER on port {port}")
    resp = parse_message(reply)
    if resp.status != 401:
        raise RuntimeError(f"expected 401, got {resp.status}")
    chosen = None
    for value in resp.headers.get_all("www-authenticate"):
        _, params = parse_auth_header(value)
        if params.get("algorithm", "MD5").upper() == "MD5":
            chosen = params
            break
    realm, nonce = chosen["realm"], chosen["nonce"]
    uri = f"sip:127.0.0.1:{port}"
    cnonce, nc = "0a4f113b", "00000001"
    response = digest_response("MD5", USER, realm, PASSWORD, "REGISTER", uri, nonce, "auth",
                               nc, cnonce)
    return (f'Digest username="{USER}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')


def run_load(loader: str, port: int, template: bytes, seconds: float, window: int,
             procs: int) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile(suffix=".sip", delete=False) as f:
        f.write(template)
    try:
        out = subprocess.run([loader, "127.0.0.1", str(port), str(seconds), str(window),
                              str(procs), f.name], capture_output=True, text=True,
                             timeout=seconds + 30)
    finally:
        os.unlink(f.name)
    fields = dict(kv.split("=") for kv in out.stdout.split())
    return int(fields["replies"]) / seconds, int(fields["ok"]) / seconds


def build_loader(workdir: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler: apt-get install gcc")
    exe = os.path.join(workdir, "sipload")
    subprocess.run([cc, "-O2", "-o", exe, str(HERE / "sipload.c")], check=True)
    return exe


class Kamailio:
    def __init__(self, workdir: str, port: int):
        self.port = port
        cfg = (ROOT / "tests/peers/kamailio/bench.cfg").read_text()
        cfg = cfg.replace("@@PORT@@", str(port)).replace("@@RUNDIR@@", workdir).replace(
            "@@USERS@@", f'\t$sht(auth=>{USER}) = "{PASSWORD}";')
        self.cfg = os.path.join(workdir, "kamailio.cfg")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.rundir = workdir
        self.proc = None

    def start(self) -> None:
        binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        self.proc = subprocess.Popen(
            [binary, "-f", self.cfg, "-DD", "-E", "-Y", self.rundir, "-m", "64", "-M", "8"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.rundir, "kam.log"), "w"))
        if ask(self.port, fill(options_template(self.port))) is None:
            self.stop()
            raise RuntimeError("kamailio did not answer; see " + self.rundir)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


#: What we recommend the gateway process sets (tap.py): fewer cyclic GC passes over
#: the many short-lived message objects a SIP flood creates.
GC_TUNED = "50000,50,1000"


class OurServer:
    def __init__(self, kind: str, port: int, gc: str | None = None):
        self.port = port
        env = dict(os.environ)
        env.pop("GOIP_BENCH_GC", None)
        if gc:
            env["GOIP_BENCH_GC"] = gc
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)],
                                     stdout=subprocess.PIPE, text=True, env=env)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("our server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--skip-kamailio", action="store_true")
    ap.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    lazy, full = bench_parser(min(args.seconds, 3.0))
    print(f"sip_parser_invites_per_s: {lazy:.0f} msg/s (target >= 150000)")
    print(f"sip_parser_full_invites_per_s: {full:.0f} msg/s")

    workdir = tempfile.mkdtemp(prefix="goip-sip-bench-")
    results = {}
    try:
        loader = build_loader(workdir)
        use_kamailio = not args.skip_kamailio and (
            shutil.which("kamailio") or os.path.exists("/usr/sbin/kamailio"))
        for kind in ("options", "register"):
            for who, gc in (("ours", None), ("ours_gc_tuned", GC_TUNED)):
                port = free_port()
                ours = OurServer(kind, port, gc)
                try:
                    tmpl = (options_template(port) if kind == "options"
                            else register_template(port, authorization_for(port)))
                    results[(who, kind)] = run_load(loader, port, tmpl, args.seconds,
                                                    args.window, args.procs)
                finally:
                    ours.stop()
            if use_kamailio:
                kport = free_port()
                kam = Kamailio(workdir, kport)
                kam.start()
                try:
                    tmpl = (options_template(kport) if kind == "options"
                            else register_template(kport, authorization_for(kport)))
                    results[("kamailio", kind)] = run_load(loader, kport, tmpl, args.seconds,
                                                           args.window, args.procs)
                finally:
                    kam.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for (who, kind), (rate, ok) in sorted(results.items()):
        print(f"sip_{kind}_{who}_per_s: {ok:.0f} tx/s (replies {rate:.0f}/s)")
    targets = {"options": 0.5, "register": 0.3}
    for kind in ("options", "register"):
        if ("kamailio", kind) in results and results[("kamailio", kind)][1]:
            kam = results[("kamailio", kind)][1]
            ratio = results[("ours", kind)][1] / kam
            tuned = results[("ours_gc_tuned", kind)][1] / kam
            print(f"sip_{kind}_ratio_vs_kamailio: {ratio:.2f} (target >= {targets[kind]})")
            print(f"sip_{kind}_ratio_vs_kamailio_gc_tuned: {tuned:.2f} "
                  f"(gc.set_threshold({GC_TUNED}))")
        else:
            print(f"sip_{kind}_ratio_vs_kamailio: n/a (kamailio not run)")


if __name__ == "__main__":
    main()
