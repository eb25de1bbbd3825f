"""Voice calls: the module's call endpoint and the voice AT commands.

Sources: ITU-T V.250 6.3 (``D``, ``A``, ``H``; ``NO CARRIER``/``BUSY``/``NO
ANSWER``); 3GPP TS 27.007 6.5 (``+CHUP``), 7.6 (``+CLIP``), 7.12 (``+CCWA``),
7.13 (``+CHLD``), 7.18 (``+CLCC``), C.2.10 (``+VTS``), 6.10 (``+CEER``); Quectel
EC2x AT Commands Manual (``+QHUP``, ``+QTONEDET``, ``+QIND: "ccinfo"``);
SIMCom SIM7500/SIM7600 AT Command Manual (``+CLCC`` URCs, ``+DDET``/
``+RXDTMF``); Huawei ``^ORIG``/``^CONF``/``^CONN``/``^CEND``/``^DDTMF`` in
:mod:`.at_huawei`.  Release causes are TS 24.008 annex H values.
"""

from __future__ import annotations

from .at import AtError, command, flag_setting

FRAME_SILENCE = bytes(320)
RING_INTERVAL = 3.0
DTMF_CHARS = set("0123456789*#ABCD")

BUSY = (17, "User busy")
NORMAL = (16, "Normal call clearing")


class ModuleVoice:
    """The module as a party of network calls."""

    def __init__(self, module):
        self.module = module

    @property
    def network(self):
        return self.module.network

    # -- network callbacks ------------------------------------------------

    def call_incoming(self, call) -> None:
        m = self.module
        states = {leg.state for leg in m.calls}
        if states & {2, 3, 4, 5} or (states and not m.settings.ccwa):
            self.network.timers.later(0, self.network.end_call, call, BUSY, self)
            return
        if states:
            leg = m.new_leg(1, 5, call.caller, call)
            m.urc(f'+CCWA: "{call.caller}",{leg.number_type},1')
        else:
            leg = m.new_leg(1, 4, call.caller, call)
            self._ring(leg)
        m.call_state_changed(leg)

    def _ring(self, leg) -> None:
        m = self.module
        if leg.state != 4 or leg not in m.calls:
            return
        if m.dialect == "quectel" and m.settings.qind.get("ring"):
            m.urc('+QIND: "ring"')
        m.urc("RING")
        if m.settings.clip:
            m.urc(f'+CLIP: "{leg.number}",{leg.number_type},"",0,"",0')
        leg.ring_timer = m.timers.later(RING_INTERVAL, self._ring, leg)

    def call_alerting(self, call) -> None:
        leg = self.module.leg_for(call)
        if leg is not None and leg.state == 2:
            leg.state = 3
            self.module.call_state_changed(leg)

    def call_answered(self, call) -> None:
        m = self.module
        leg = m.leg_for(call)
        if leg is None:
            return
        leg.state = 0
        if m.settings.colp:
            m.urc(f'+COLP: "{leg.number}",{leg.number_type}')
        if m.dialect == "simcom":
            m.urc("VOICE CALL: BEGIN")
        m.call_state_changed(leg)

    def call_connected(self, call) -> None:
        pass

    def call_ended(self, call, cause) -> None:
        m = self.module
        leg = m.leg_for(call)
        if leg is None:
            return
        m.timers.cancel(leg.ring_timer)
        m.calls.remove(leg)
        m.last_cause = cause
        was = leg.state
        leg.state = 6
        m.call_state_changed(leg)
        if m.dialect == "huawei":
            from .at_huawei import call_end

            return call_end(m, leg, cause, local=False, was=was)
        if m.dialect == "simcom" and call.answered is not None:
            secs = int((call.ended or 0) - call.answered)
            m.urc(f"VOICE CALL: END: {secs:06d}")
        if leg.direction == 0 and was in (2, 3) and cause[0] == 17:
            m.final_urc("BUSY")
        elif leg.direction == 0 and was in (2, 3) and cause[0] == 19:
            m.final_urc("NO ANSWER")
        else:
            m.final_urc("NO CARRIER")

    def call_dtmf(self, call, digit: str) -> None:
        m = self.module
        if m.dialect == "huawei":
            from .at_huawei import dtmf_detected

            return dtmf_detected(m, digit)
        if not m.settings.tonedet:
            return
        if m.dialect == "quectel":
            m.urc(f"+QTONEDET: {ord(digit)}")
        else:
            m.urc(f"+RXDTMF: {digit}")

    def pull_audio(self, call) -> bytes:
        leg = self.module.leg_for(call)
        frame = self.module.pull_frame()
        if leg is None or leg.state != 0 or not self.module.settings.pcm:
            return FRAME_SILENCE
        return frame

    def push_audio(self, call, frame: bytes) -> None:
        leg = self.module.leg_for(call)
        if leg is not None and leg.state == 0:
            self.module.push_frame(frame)

    def push_early_audio(self, call, frame: bytes) -> None:
        """In-band ringback while the callee is alerted (TS 24.008 progress
        indicator: the network's tone reaches the caller before answer)."""
        leg = self.module.leg_for(call)
        if leg is not None and leg.state == 3:
            self.module.push_frame(frame)

    # -- helpers for AT handlers ------------------------------------------

    def release(self, leg, cause=NORMAL) -> None:
        m = self.module
        m.timers.cancel(leg.ring_timer)
        if leg in m.calls:
            m.calls.remove(leg)
        m.last_cause = cause
        if m.dialect == "huawei":
            from .at_huawei import call_end

            call_end(m, leg, cause, local=True, was=leg.state)
        self.network.end_call(leg.call, cause, by=self)


def _legs(module, *states):
    return [leg for leg in module.calls if leg.state in states]


@command("D")
def dial(module, cmd):
    text = cmd.args.strip()
    if not text.endswith(";"):
        return [], "NO CARRIER"  # data calls are not simulated
    number = text[:-1].strip().strip('"')
    if text.startswith(">") or not number or not set(number) <= set("+0123456789*#"):
        raise AtError()
    sim = module.sim
    if sim is None or not module.sim_ready:
        raise AtError(10 if sim is None else 11)
    if not module.registered:
        module.last_cause = (30, "No network service")
        return [], "NO CARRIER"
    if _legs(module, 2, 3, 4, 5):
        raise AtError(3)
    for leg in _legs(module, 0):
        leg.state = 1
        module.call_state_changed(leg)
    leg = module.new_leg(0, 2, number, None)
    leg.call = module.network.place_call(module.voice, sim.msisdn, number)
    module.call_state_changed(leg)
    return []


@command("A")
def answer(module, cmd):
    legs = _legs(module, 4)
    if not legs:
        return [], "NO CARRIER"
    leg = legs[0]
    module.timers.cancel(leg.ring_timer)
    leg.state = 0
    module.network.answer(leg.call)
    module.call_state_changed(leg)
    return []


def _release_all(module, incoming_cause=BUSY):
    for leg in list(module.calls):
        module.voice.release(leg, incoming_cause if leg.state in (4, 5) else NORMAL)


@command("H")
def hook(module, cmd):
    if cmd.args not in ("", "0"):
        raise AtError()
    _release_all(module)
    return []


@command("+CHUP")
def hangup(module, cmd):
    if cmd.kind == "test":
        return []
    _release_all(module)
    return []


@command("+QHUP", dialects=("quectel",))
def qhup(module, cmd):
    """``AT+QHUP=<cause>[,<idx>]``: hang up with a chosen release cause."""
    if cmd.kind == "test":
        return ["+QHUP: (1-127),(1-7)"]
    code = cmd.int_param(0, lo=1, hi=127)
    idx = cmd.int_param(1, 0, lo=0, hi=7)
    cause = (code, "User busy" if code == 17 else "Call rejected" if code == 21 else
             "Normal call clearing" if code == 16 else "Normal, unspecified")
    for leg in list(module.calls):
        if idx in (0, leg.idx):
            module.voice.release(leg, cause)
    return []


@command("+CLCC")
def clcc(module, cmd):
    if cmd.kind == "exec":
        return [module.clcc_line(leg) for leg in sorted(module.calls, key=lambda c: c.idx)]
    if cmd.kind == "set" and module.dialect == "simcom":
        module.settings.clcc_urc = cmd.int_param(0, lo=0, hi=1)
        return []
    if cmd.kind == "read" and module.dialect == "simcom":
        return [f"+CLCC: {module.settings.clcc_urc}"]
    if cmd.kind == "test":
        return ["+CLCC: (0,1)"] if module.dialect == "simcom" else []
    raise AtError()


@command("+CEER")
def ceer(module, cmd):
    code, text = module.last_cause
    if module.dialect == "quectel":
        return [f'+CEER: "CC INFO",{code},"{text}"']
    return [f"+CEER: {text}"]


@command("+VTS")
def vts(module, cmd):
    if cmd.kind == "test":
        return ["+VTS: (0-9,*,#,A,B,C,D)"]
    active = _legs(module, 0)
    if not active:
        raise AtError(3)
    params = cmd.params()
    tones = (params[0] if params else "") or ""
    tones = tones.replace(" ", "").upper()
    if not tones or not set(tones) <= DTMF_CHARS:
        raise AtError(50)
    for digit in tones:
        module.network.send_dtmf(active[0].call, module.voice, digit)
    return []


@command("+CHLD")
def chld(module, cmd):
    if cmd.kind == "test":
        return ["+CHLD: (0,1,1x,2,2x)"]
    arg = (cmd.params() or ["2"])[0] or "2"
    voice = module.voice
    waiting = _legs(module, 5)
    held = _legs(module, 1)
    active = _legs(module, 0)
    if arg == "0":
        for leg in waiting or held:
            voice.release(leg, BUSY if leg.state == 5 else NORMAL)
    elif arg == "1":
        for leg in active:
            voice.release(leg)
        _activate(module, waiting[:1] or held)
    elif arg.startswith("1") and arg[1:].isdigit():
        leg = next((c for c in module.calls if c.idx == int(arg[1:])), None)
        if leg is None:
            raise AtError(22)
        voice.release(leg)
    elif arg == "2":
        for leg in active:
            leg.state = 1
            module.call_state_changed(leg)
        _activate(module, waiting[:1] or held)
    elif arg.startswith("2") and arg[1:].isdigit():
        target = next((c for c in held if c.idx == int(arg[1:])), None)
        if target is None:
            raise AtError(22)
        for leg in active:
            leg.state = 1
        _activate(module, [target])
    else:
        raise AtError(4)
    return []


def _activate(module, legs) -> None:
    for leg in legs:
        if leg.state == 5:
            leg.state = 0
            module.network.answer(leg.call)
        else:
            leg.state = 0
        module.call_state_changed(leg)


@command("+CCWA")
def ccwa(module, cmd):
    if cmd.kind == "read":
        return [f"+CCWA: {module.settings.ccwa}"]
    if cmd.kind == "test":
        return ["+CCWA: (0,1)"]
    module.settings.ccwa = cmd.int_param(0, 0, lo=0, hi=1)
    mode = cmd.int_param(1, 3, lo=0, hi=2) if len(cmd.params()) > 1 else None
    if mode == 2:
        return [f"+CCWA: {module.settings.ccwa},1"]
    return []


def tonedet(module, cmd):
    """Quectel ``AT+QTONEDET=<0|1>`` / SIMCom ``AT+DDET=<0|1>``."""
    return flag_setting(module, cmd, "tonedet")


command("+QTONEDET", dialects=("quectel",))(tonedet)
command("+DDET", dialects=("simcom",))(tonedet)
