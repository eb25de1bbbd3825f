"""A simulated cellular module: two ptys, an AT interpreter and radio state.

The start-up sequence and URCs follow the Quectel EC2x AT Commands Manual
(``RDY``, ``+CPIN: READY``, ``+QUSIM: 1``, ``+QIND: SMS DONE``/``PB DONE``)
the SIMCom SIM7500/SIM7600 AT Command Manual (``RDY``, ``+CPIN: READY``,
``SMS DONE``, ``PB DONE``) and the Huawei ME909s / MU509 AT Command Interface
Specifications (``^SYSSTART``, ``^SIMST``, ``^RSSI``; the Huawei command set itself
is in :mod:`.at_huawei`).  Registration URCs follow 3GPP TS 27.007 sections
7.2 (``+CREG``), 10.1.19 (``+CGREG``) and 10.1.22 (``+CEREG``).

The AT port carries commands; the voice port carries 8 kHz s16le mono PCM in
320-byte frames, as the EC2x USB audio port does after ``AT+QPCMV=1,0`` and the
SIM7600 after ``AT+CPCMREG=1`` and a Huawei module after ``AT^CVOICE=0`` plus
``AT^DDSETEX=2``.
"""

from __future__ import annotations

import os

import attrs
from twisted.logger import Logger

from .faults import Faults
from .interpreter import AtInterpreter
from .pty import PtyPort
from .sim import SimCard, SmsStore
from .timers import Timers

log = Logger()

FRAME_BYTES = 320
UPLINK_FRAMES = 10
#: Downlink audio kept for a client that does not read (160 ms): beyond it,
#: new frames are dropped whole, so a late reader gets little stale audio.
AUDIO_BACKLOG_FRAMES = 8


@attrs.frozen
class Identity:
    manufacturer: str
    model: str
    revision: str


IDENTITIES = {
    "quectel": Identity("Quectel", "EC25", "EC25EFAR06A06M4G"),
    "simcom": Identity("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H", "LE20B04SIM7600G22"),
    # Huawei E-series dongles (E173, E1752) answer AT+CGMI with a lower-case
    # "huawei"; the model is an LTE module so the gateway sees 4G.
    "huawei": Identity("huawei", "ME909s-120", "11.617.01.00.00"),
}


def luhn_imei(body14: str) -> str:
    total = 0
    for i, ch in enumerate(body14):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body14 + str((10 - total % 10) % 10)


@attrs.define
class Settings:
    """Per-port AT settings; ``AT&F``/``ATZ`` and a reset restore them."""

    echo: bool = True
    verbose: bool = True
    cmee: int = 0
    cmgf: int = 0
    cscs: str = "GSM"
    csms: int = 0
    cnmi: tuple = (2, 1, 0, 0, 0)
    cpms: tuple = ("SM", "SM", "SM")
    csca: str = "+12125550000"
    csmp: tuple = (17, 167, 0, 0)
    creg: int = 0
    cgreg: int = 0
    cereg: int = 0
    clip: int = 0
    ccwa: int = 0
    colp: int = 0
    cusd: int = 0
    clcc_urc: int = 0
    tonedet: int = 0
    qind: dict = attrs.field(factory=lambda: {"csq": 0, "smsfull": 0, "ring": 0, "ccinfo": 0})
    clvl: int = 3
    qmic: tuple = (20000, 20000)
    qrxgain: int = 20000
    pcm: bool = False
    ims: int = 1
    cops_mode: int = 0
    cops_format: int = 0
    cops_plmn: str | None = None
    http_url: str = ""
    cssn: tuple = (0, 0)
    simcom_gain: dict = attrs.field(factory=dict)
    curc: int = 1  # Huawei ^CURC: unsolicited ^RSSI/^SRVST/... reports (on at boot)
    ddsetex: int = 0  # Huawei ^DDSETEX: 2 = call audio to the voice port
    ussdmode: int = 1  # Huawei ^USSDMODE: 1 = transparent (TE packs GSM 7-bit hex)


@attrs.define
class CallLeg:
    """A call as the module sees it (TS 27.007 +CLCC)."""

    idx: int
    direction: int  # 0 mobile originated, 1 mobile terminated
    state: int  # 0 active, 1 held, 2 dialing, 3 alerting, 4 incoming, 5 waiting
    number: str
    call: object = None
    ring_timer: object = None
    connected: bool = False  # reached the active state once (Huawei ^CONN sent)

    @property
    def number_type(self) -> int:
        return 145 if self.number.startswith("+") else 129


class _AudioProtocol:
    def __init__(self, module):
        self.module = module

    def data_received(self, data):
        self.module.audio_uplink(data)

    def port_closed(self, port):
        pass


class SimulatedModule(AtInterpreter):
    """One module.  Create it with :meth:`Network.add_module`."""

    def __init__(self, network, number: int, *, dialect="quectel", sims=(), imei=None,
                 link_dir=None, boot_delay=0.5, reg_delay=2.0, me_capacity=20):
        if dialect not in IDENTITIES:
            raise ValueError(f"unknown dialect {dialect!r}")
        self.network = network
        self.reactor = network.reactor
        self.timers = Timers(network.clock)
        self.number = number
        self.dialect = dialect
        self.identity = IDENTITIES[dialect]
        self.imei = imei or luhn_imei(f"86{number:012d}"[:14])
        self.slots: list[SimCard | None] = list(sims)
        self.active_slot = 0
        self.link_dir = link_dir
        self.boot_delay = boot_delay
        self.reg_delay = reg_delay
        self.me_store = SmsStore("ME", me_capacity)
        self.faults = Faults()
        self.settings = Settings()
        self.at_port = None
        self.audio_port = None
        self.plugged = False
        self.powered = False
        self.cfun = 1
        self.sim_ready = False
        self.reg = 0
        self.serving: str | None = None
        self.rssi = 24
        self.ber = 99
        self.lac = 0x1A2B
        self.ci = 0x01C2D3 + number
        self.act = 7
        self.calls: list[CallLeg] = []
        self.last_cause = (0, "No cause")
        self._inbuf = b""
        self._busy = False
        self._text_input = None
        self._text_len = None
        self._urc_queue: list[bytes] = []
        self._uplink = bytearray()
        self._last_line = ""
        self._reg_timer = None
        self.pending_ack = None
        self.ussd_session = None
        self.http_body = None
        self.http_session = False
        #: Huawei ^CVOICE mode, kept across resets like the module's NV item
        #: (0 = voice over the USB PCM port); ``voice_capable`` False plays a
        #: data-only firmware, which refuses ^CVOICE.
        self.voice_mode = 0
        self.voice_capable = True
        from .voice import ModuleVoice

        self.voice = ModuleVoice(self)

    # -- life cycle -------------------------------------------------------

    def start(self) -> None:
        """Plug in and power on: open both ptys and boot."""
        if self.plugged:
            return
        self.at_port = PtyPort(self.reactor, self, name=f"module{self.number}-at")
        self.audio_port = PtyPort(self.reactor, _AudioProtocol(self),
                                  name=f"module{self.number}-audio",
                                  unread_limit=AUDIO_BACKLOG_FRAMES * FRAME_BYTES)
        self._link()
        self.plugged = True
        self._boot()
        log.info("simulator module {module} at {at_path} audio {audio_path}",
                 module=self.number, at_path=self.at_path, audio_path=self.audio_path)
        self.network.module_changed(self, "plugged")

    def stop(self) -> None:
        """Unplug: close the ptys, drop calls, forget volatile state."""
        for port in self._detach():
            port.close()

    def _detach(self) -> list:
        if not self.plugged:
            return []
        self.plugged = False
        self._power_down("module unplugged")
        self.timers.cancel_all()
        ports = [p for p in (self.at_port, self.audio_port) if p is not None]
        self._unlink(ports)
        self.network.module_changed(self, "unplugged")
        return ports

    def unplug(self) -> None:
        self.stop()

    def replug(self) -> None:
        """Come back with new pty paths and the same IMEI and SIMs.

        The old ptys close only after the new ones exist, so the kernel cannot
        hand out the same numbers again (a USB device re-enumerating gets a new
        ttyUSB name too)."""
        old = self._detach()
        self.start()
        for port in old:
            port.close()

    @property
    def at_path(self) -> str | None:
        return self.at_port.path if self.plugged else None

    @property
    def audio_path(self) -> str | None:
        return self.audio_port.path if self.plugged else None

    def _link(self) -> None:
        """Stable names like /dev/serial/by-id, for clients that reopen."""
        if not self.link_dir:
            return
        os.makedirs(self.link_dir, exist_ok=True)
        for kind, path in (("at", self.at_port.path), ("audio", self.audio_port.path)):
            link = os.path.join(self.link_dir, f"module{self.number}-{kind}")
            try:
                if os.path.lexists(link):
                    os.unlink(link)
                os.symlink(path, link)
            except OSError as exc:
                log.warn("simulator cannot link {link}: {error}", link=link, error=exc)

    def _unlink(self, ports) -> None:
        """An unplugged device's by-id names vanish (udev does this).  A name left
        behind points at a pty number the kernel hands to the next pty opened on the
        machine, another simulator's module even, and a client polling the name
        would open that stranger's port and read its answers."""
        if not self.link_dir:
            return
        paths = {p.path for p in ports}
        for kind in ("at", "audio"):
            link = os.path.join(self.link_dir, f"module{self.number}-{kind}")
            try:
                if os.readlink(link) in paths:
                    os.unlink(link)
            except OSError:
                pass

    def _boot(self) -> None:
        self.settings = Settings()
        self.powered = True
        self.cfun = 1
        self._inbuf = b""
        self._busy = False
        self._text_input = None
        self._text_len = None
        self.timers.later(self.boot_delay, self._booted)

    def _booted(self) -> None:
        self.urc("^SYSSTART" if self.dialect == "huawei" else "RDY")
        self.sim_init()

    def _power_down(self, reason: str) -> None:
        self.powered = False
        self.network.drop_calls(self, cause=(27, reason))
        self.calls.clear()
        self._set_reg(0, urc=False)
        self.sim_ready = False
        if self.ussd_session is not None:
            self.ussd_session = None

    def reset(self, delay: float = 1.0) -> None:
        """``AT+CFUN=1,1``: the USB device re-enumerates (new pty paths)."""
        self.stop()
        self.timers.later(delay, self.start)

    # -- SIM and registration ---------------------------------------------

    @property
    def message_ref(self) -> int:
        """The last TP-MR used; kept on the SIM (EF_SMSS) like a real module."""
        return self.sim.last_mr if self.sim is not None else 0

    @message_ref.setter
    def message_ref(self, value: int) -> None:
        if self.sim is not None:
            self.sim.last_mr = value

    @property
    def sim(self) -> SimCard | None:
        if 0 <= self.active_slot < len(self.slots):
            return self.slots[self.active_slot]
        return None

    def sim_init(self) -> None:
        """What a module does after power-on or a SIM switch."""
        self.sim_ready = False
        self._set_reg(0, urc=True)
        sim = self.sim
        if sim is None:
            self.urc("+CPIN: NOT INSERTED")
            return
        sim.reset_session()
        state = sim.pin_state
        self.urc(f"+CPIN: {state}")
        if state == "READY":
            self._sim_unlocked()

    def _sim_unlocked(self) -> None:
        self.sim_ready = True
        if self.dialect == "quectel":
            self.urc("+QUSIM: 1")
            self.timers.later(0.2, self.urc, "+QIND: SMS DONE")
            self.timers.later(0.3, self.urc, "+QIND: PB DONE")
        elif self.dialect == "huawei":
            if self.settings.curc:
                self.urc("^SIMST:1")
        else:
            self.timers.later(0.2, self.urc, "SMS DONE")
            self.timers.later(0.3, self.urc, "PB DONE")
        self.schedule_registration()

    def schedule_registration(self, delay: float | None = None) -> None:
        self.timers.cancel(self._reg_timer)
        if self.cfun != 1 or not self.sim_ready:
            return
        self._set_reg(2, urc=True)
        self._reg_timer = self.timers.later(
            self.reg_delay if delay is None else delay, self._try_register)

    def _try_register(self) -> None:
        self._reg_timer = None
        if not (self.plugged and self.cfun == 1 and self.sim_ready):
            return
        plmn = self.network.serving_plmn(self)
        if plmn is None:
            self._set_reg(2, urc=True)
            return
        self.serving = plmn
        self._set_reg(1 if plmn == self.sim.operator else 5, urc=True)
        self.network.module_registered(self)

    def lose_registration(self, stat: int = 2) -> None:
        """Coverage lost: searching (2) or denied (3); calls drop."""
        self.timers.cancel(self._reg_timer)
        self.network.drop_calls(self, cause=(47, "Resources unavailable, unspecified"))
        self._set_reg(stat, urc=True)

    @property
    def registered(self) -> bool:
        return self.reg in (1, 5)

    def _set_reg(self, stat: int, *, urc: bool) -> None:
        changed = stat != self.reg
        self.reg = stat
        if stat not in (1, 5):
            self.serving = None if stat != 5 else self.serving
        if urc and changed and self.plugged:
            if self.dialect == "huawei" and self.settings.curc:
                self.urc(f"^SRVST:{2 if stat in (1, 5) else 0}")
            for name in ("creg", "cgreg", "cereg"):
                n = getattr(self.settings, name)
                if n:
                    self.urc(self.reg_line(name, n, urc=True))

    def reg_line(self, name: str, n: int, *, urc: bool) -> str:
        """+CREG/+CGREG/+CEREG line: ``[<n>,]<stat>[,<lac>,<ci>,<act>]``."""
        head = f"+{name.upper()}: "
        parts = [] if urc else [str(n)]
        parts.append(str(self.reg))
        if n >= 2 and self.reg in (1, 5):
            parts += [f'"{self.lac:04X}"', f'"{self.ci:X}"', str(self.act)]
        return head + ",".join(parts)

    def set_signal(self, rssi: int, ber: int = 99) -> None:
        self.rssi, self.ber = rssi, ber
        if self.dialect == "quectel" and self.settings.qind.get("csq"):
            self.urc(f'+QIND: "csq",{rssi},{ber}')
        if self.dialect == "huawei" and self.settings.curc:
            self.urc(f"^RSSI:{rssi}")

    def switch_slot(self, slot: int) -> None:
        """Bind another SIM slot; the module re-runs SIM initialisation."""
        if not 0 <= slot < max(1, len(self.slots)):
            raise ValueError(f"slot {slot} out of range")
        self.network.drop_calls(self, cause=(31, "SIM switched"))
        self.calls.clear()
        self.active_slot = slot
        if self.plugged and self.powered:
            self.timers.later(0.5, self.sim_init)
        self.network.module_changed(self, "slot")

    def insert_sim(self, slot: int, sim: SimCard | None) -> None:
        """Put a card into ``slot`` (``None`` takes it out).  Changing the card
        of the bound slot re-runs SIM initialisation, as hot-swap does."""
        if not 0 <= slot < len(self.slots):
            raise ValueError(f"slot {slot} out of range")
        self.slots[slot] = sim
        if slot == self.active_slot:
            self.network.drop_calls(self, cause=(31, "SIM removed"))
            self.calls.clear()
            if self.plugged and self.powered:
                self.timers.later(0.2, self.sim_init)
        self.network.module_changed(self, "sim")

    # -- voice port -------------------------------------------------------

    def audio_uplink(self, data: bytes) -> None:
        self._uplink += data
        excess = len(self._uplink) - UPLINK_FRAMES * FRAME_BYTES
        if excess > 0:
            del self._uplink[:excess + (-excess) % FRAME_BYTES]

    def pull_frame(self) -> bytes:
        """The next frame the gateway sent (silence on underrun)."""
        if len(self._uplink) >= FRAME_BYTES:
            frame = bytes(self._uplink[:FRAME_BYTES])
            del self._uplink[:FRAME_BYTES]
            return frame
        return bytes(FRAME_BYTES)

    def push_frame(self, frame: bytes) -> None:
        if self.plugged and self.settings.pcm and self.audio_port is not None:
            self.audio_port.write(frame)

    # -- calls ------------------------------------------------------------

    def new_leg(self, direction: int, state: int, number: str, call) -> CallLeg:
        used = {leg.idx for leg in self.calls}
        idx = next(i for i in range(1, 8) if i not in used)
        leg = CallLeg(idx, direction, state, number, call)
        self.calls.append(leg)
        return leg

    def leg_for(self, call) -> CallLeg | None:
        return next((leg for leg in self.calls if leg.call is call), None)

    def clcc_line(self, leg: CallLeg) -> str:
        mpty = 0
        return (f'+CLCC: {leg.idx},{leg.direction},{leg.state},0,{mpty},'
                f'"{leg.number}",{leg.number_type}')

    def call_state_changed(self, leg: CallLeg) -> None:
        """Vendor call-state URCs (SIMCom ``+CLCC``, Quectel ``ccinfo``)."""
        if self.dialect == "simcom" and self.settings.clcc_urc:
            self.urc(self.clcc_line(leg))
        if self.dialect == "quectel" and self.settings.qind.get("ccinfo"):
            self.urc(f'+QIND: "ccinfo",{leg.idx},{leg.direction},{leg.state},0,0,'
                     f'"{leg.number}",{leg.number_type}')
        if self.dialect == "huawei":
            from .at_huawei import call_progress

            call_progress(self, leg)

    def apply_fault(self, kind: str, **params) -> None:
        """Inject a fault (see :mod:`.faults`); ValueError names a bad field."""
        if kind == "store_full":
            sim = self.sim
            if sim is None:
                raise ValueError("slot: no SIM in the active slot")
            from goip_tw.modem import pdu

            filler, length = pdu.encode_deliver("+10000", "filler", self.network.sms.now())[0]
            while not sim.store.full:
                sim.store.add(1, filler, length)
        elif kind == "store_clear":
            if self.sim is not None:
                self.sim.store.messages.clear()
                self.network.sms.retry_for(self)
        elif kind == "unplug":
            self.stop()
        elif kind == "replug":
            self.replug()
        elif kind == "reset":
            self.reset(float(params.get("delay", 1.0)))
        elif kind == "garbage" and params.get("now"):
            self._write(self.faults.rng.randbytes(int(params.get("length", 16))))
        elif kind == "urc":
            self.urc(str(params.get("text", "RING")))
        else:
            self.faults.apply(kind, **params)
        self.network.record("fault", module=self.number, fault=kind)

    def describe(self) -> dict:
        sim = self.sim
        return {
            "module": self.number,
            "dialect": self.dialect,
            "imei": self.imei,
            "plugged": self.plugged,
            "at_path": self.at_path,
            "audio_path": self.audio_path,
            "active_slot": self.active_slot,
            "slots": [s.describe() if s else None for s in self.slots],
            "msisdn": sim.msisdn if sim else None,
            "registered": self.registered,
            "reg": self.reg,
            "rssi": self.rssi,
            "serving": self.serving,
            "calls": [
                {"idx": c.idx, "direction": c.direction, "state": c.state, "number": c.number}
                for c in self.calls
            ],
            "faults": self.faults.describe(),
        }
