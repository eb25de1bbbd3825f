"""The Huawei dialect: ``^`` commands and the call-progress URCs.

Sources: Huawei "ME909s Series LTE Module AT Command Interface Specification",
"MU509 HSDPA LGA Module AT Command Interface Specification" (issue 04) and "MU609
HSPA LGA Module Application Guide":

- ``^CVOICE`` voice over the USB PCM port; the query answers
  ``^CVOICE:<mode>,<sampling rate>,<data bits>,<frame period>`` = ``0,8000,16,20``
  (8 kHz, 16-bit, 20 ms frames: the same 320-byte frames as the other dialects);
- ``^DDSETEX=2`` sends call audio to the voice (PCM) port.  Public Huawei voice
  drivers send it for every call, so we keep the routing only until the last call
  ends: a gateway that sets it once at start-up gets silence from the second call on;
- ``^ORIG:<id>,<type>`` (call originated), ``^CONF:<id>`` (the callee is ringing),
  ``^CONN:<id>,<type>`` (connected), ``^CEND:<id>,<duration>,<end_status>[,<cc_cause>]``
  (ended).  ``<end_status>`` 29 = ended by this side (CM_CALL_END_CLIENT_END),
  102 = incoming call rejected here, 21 = no service, 104 = released by the
  network with ``<cc_cause>`` a TS 24.008 cause.  Huawei reports voice call ends
  with ``^CEND`` instead of V.250's ``NO CARRIER``/``BUSY``, so we send only ``^CEND``;
- ``^CURC`` switches the unsolicited reports (``^RSSI:<rssi>``, ``^SRVST``,
  ``^SIMST``, ``^DDTMF``) on and off; ``^SYSINFOEX`` / ``^SYSINFO`` report service,
  SIM and radio (``<sysmode>`` 1 GSM, 3 WCDMA, 6 LTE); ``^HCSQ`` signal per RAT;
  ``^ICCID?`` the ICCID; ``^DTMF=<id>,<digit>`` sends DTMF on one call;
- ``^USSDMODE``: 1 = transparent (the TE sends and gets GSM 7-bit packed hex, DCS 15),
  0 = the module codes USSD strings itself.  E-series firmware starts transparent,
  which is why public Huawei drivers pack USSD requests themselves.

3GPP TS 27.007 commands (``+CLCC``, ``+VTS``, ``+CUSD``, ...) are shared with the
other dialects and live in :mod:`.at_basic`, :mod:`.voice` and :mod:`.ussd`.
"""

from __future__ import annotations

from .at import AtError, command, flag_setting
from .at_basic import require_sim

H = ("huawei",)

#: module.act (27.007 <AcT>) -> (^SYSINFOEX sysmode, name, submode, name, ^SYSINFO sys_mode)
_SYSMODES = {7: (6, "LTE", 101, "LTE", 17), 2: (3, "WCDMA", 41, "WCDMA", 5),
             0: (1, "GSM", 1, "GSM", 3)}
DTMF_DIGITS = set("0123456789*#ABCD")

# end_status values of ^CEND (MU509 spec, CM_CALL_END_*)
END_CLIENT = 29
END_INCOMING_REJECTED = 102
END_NO_SERVICE = 21
END_NETWORK = 104


def _sync_pcm(module) -> None:
    """Voice frames flow on the voice port only with ^CVOICE 0 and ^DDSETEX 2."""
    module.settings.pcm = (module.voice_capable and module.voice_mode == 0
                           and module.settings.ddsetex == 2)


@command("^CVOICE", dialects=H)
def cvoice(module, cmd):
    if not module.voice_capable:
        raise AtError()  # data-only firmware: no voice commands at all
    if cmd.kind == "read":
        return [f"^CVOICE:{module.voice_mode},8000,16,20"]
    if cmd.kind == "test":
        return ["^CVOICE:(0)"]
    if cmd.kind != "set":
        raise AtError()
    module.voice_mode = cmd.int_param(0, lo=0, hi=0)
    _sync_pcm(module)
    return []


@command("^DDSETEX", dialects=H)
def ddsetex(module, cmd):
    if cmd.kind == "read":
        return [f"^DDSETEX:{module.settings.ddsetex}"]
    if cmd.kind == "test":
        return ["^DDSETEX:(1,2)"]
    if cmd.kind != "set" or not module.voice_capable:
        raise AtError()
    module.settings.ddsetex = cmd.int_param(0, lo=1, hi=2)
    _sync_pcm(module)
    return []


@command("^CURC", dialects=H)
def curc(module, cmd):
    return flag_setting(module, cmd, "curc")


@command("^USSDMODE", dialects=H)
def ussdmode(module, cmd):
    return flag_setting(module, cmd, "ussdmode")


def _service(module):
    """(srv_status, srv_domain, roam, sim_state) as ^SYSINFO(EX) reports them."""
    sim = module.sim
    sim_state = 255 if sim is None else 1 if module.sim_ready else 0
    if module.registered:
        return 2, 3, 1 if module.reg == 5 else 0, sim_state
    return 0, 0, 0, sim_state


@command("^SYSINFOEX", dialects=H)
def sysinfoex(module, cmd):
    if cmd.kind == "test":
        return []
    srv, domain, roam, sim_state = _service(module)
    if srv != 2:
        return [f'^SYSINFOEX:{srv},{domain},{roam},{sim_state},,0,"NO SERVICE",0,"NO SERVICE"']
    mode, name, sub, subname, _ = _SYSMODES.get(module.act, _SYSMODES[7])
    return [f'^SYSINFOEX:{srv},{domain},{roam},{sim_state},,{mode},"{name}",{sub},"{subname}"']


@command("^SYSINFO", dialects=H)
def sysinfo(module, cmd):
    if cmd.kind == "test":
        return []
    srv, domain, roam, sim_state = _service(module)
    mode = _SYSMODES.get(module.act, _SYSMODES[7])[4] if srv == 2 else 0
    return [f"^SYSINFO:{srv},{domain},{roam},{mode},{sim_state},,"]


@command("^HCSQ", dialects=H)
def hcsq(module, cmd):
    """^HCSQ:<sysmode>,<values>: LTE rssi/rsrp/sinr/rsrq levels derived from +CSQ."""
    if cmd.kind == "test":
        return ['^HCSQ:"NOSERVICE","GSM","WCDMA","LTE"']
    if not module.registered or module.rssi == 99:
        return ['^HCSQ:"NOSERVICE"']
    dbm = -113 + 2 * module.rssi
    if module.act == 7:
        return [f'^HCSQ:"LTE",{dbm + 120},{dbm - 20 + 140},{min(251, 120 + module.rssi)},20']
    if module.act == 2:
        return [f'^HCSQ:"WCDMA",{dbm + 120},{dbm - 5 + 120},30']
    return [f'^HCSQ:"GSM",{dbm + 120}']


@command("^ICCID", dialects=H)
def iccid(module, cmd):
    if cmd.kind == "test":
        return []
    return [f"^ICCID: {require_sim(module, ready=False).iccid}"]


@command("^DTMF", dialects=H)
def dtmf(module, cmd):
    """``AT^DTMF=<call_x>,<dtmf_digit>[,<on_length>[,<off_length>]]``."""
    if cmd.kind == "test":
        return ["^DTMF:(1-7),(0-9,*,#,A-D)"]
    if cmd.kind != "set":
        raise AtError(50)
    idx = cmd.int_param(0, lo=1, hi=7)
    digit = (cmd.str_param(1) or "").strip().upper()
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise AtError(50)
    leg = next((c for c in module.calls if c.idx == idx and c.state == 0), None)
    if leg is None:
        raise AtError(3)
    module.network.send_dtmf(leg.call, module.voice, digit)
    return []


# -- URCs called from module.py / voice.py ------------------------------------


def call_progress(module, leg) -> None:
    """^ORIG when our dial starts, ^CONF when the callee rings, ^CONN once a call
    first becomes active (not again after hold/retrieve)."""
    if leg.state == 2 and leg.direction == 0:
        module.urc(f"^ORIG:{leg.idx},0")
    elif leg.state == 3 and leg.direction == 0:
        module.urc(f"^CONF:{leg.idx}")
    elif leg.state == 0 and not leg.connected:
        leg.connected = True
        module.urc(f"^CONN:{leg.idx},0")


def call_end(module, leg, cause, *, local: bool, was: int) -> None:
    """^CEND for one ended call; when it was the last, the voice routing ends."""
    call = leg.call
    answered = getattr(call, "answered", None)
    now = module.network.clock.seconds()
    duration = round(now - answered) if answered is not None else 0
    code = cause[0]
    if local:
        status = END_INCOMING_REJECTED if was in (4, 5) else END_CLIENT
        module.urc(f"^CEND:{leg.idx},{duration},{status},{code}")
    elif code == 30:
        module.urc(f"^CEND:{leg.idx},{duration},{END_NO_SERVICE}")
    else:
        module.urc(f"^CEND:{leg.idx},{duration},{END_NETWORK},{code}")
    if not module.calls:
        module.settings.ddsetex = 0
        _sync_pcm(module)


def dtmf_detected(module, digit: str) -> None:
    if module.settings.curc:
        module.urc(f"^DDTMF:{digit}")
