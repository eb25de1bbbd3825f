"""General, SIM and network commands.

Sources: ITU-T V.250 (``E``, ``V``, ``Z``, ``&F``, ``I``), 3GPP TS 27.007
sections 5 (identification, ``+CSCS``, ``+CMEE``), 7 (``+CNUM``, ``+CREG``,
``+COPS``), 8 (``+CPAS``, ``+CFUN``, ``+CPIN``, ``+CSQ``, ``+CLVL``) and 10
(``+CGATT``, ``+CGREG``, ``+CEREG``); Quectel EC2x AT Commands Manual
(``+QCCID``, ``+QNWINFO``, ``+QSPN``, ``+QCFG``, ``+QINDCFG``, ``+QPINC``,
``+QDSIM``, ``+QMIC``, ``+QRXGAIN``, ``+QPCMV``); SIMCom SIM7500/SIM7600 AT
Command Manual (``+CICCID``, ``+CPCMREG``, ``+SPIC``); Huawei ME909s / MU509
AT Command Interface Specifications (``I`` layout, ``+CMIC``; the ``^`` commands are
in :mod:`.at_huawei`).
"""

from __future__ import annotations

from .at import AtError, command, quote
from .at import flag_setting as _bool_setting

Q = ("quectel",)
S = ("simcom",)


@command("E")
def echo(module, cmd):
    if cmd.args not in ("", "0", "1"):
        raise AtError()
    module.settings.echo = cmd.args == "1"
    return []


@command("V")
def verbose(module, cmd):
    if cmd.args not in ("", "0", "1"):
        raise AtError()
    module.settings.verbose = cmd.args == "1"
    return []


@command("Z", "&F")
def factory(module, cmd):
    from .module import Settings

    keep_echo = module.settings.echo if cmd.name == "Z" else True
    module.settings = Settings()
    module.settings.echo = keep_echo
    return []


@command("&W", "&D", "&C", "Q", "X", "L", "M")
def ignored_basic(module, cmd):
    return []


@command("S0", "S3", "S4", "S5", "S7", "S10")
def s_register(module, cmd):
    if cmd.kind == "read":
        return [{"S3": "013", "S4": "010", "S5": "008"}.get(cmd.name, "000")]
    return []


@command("I")
def info(module, cmd):
    ident = module.identity
    if module.dialect == "simcom":
        return [f"Manufacturer: {ident.manufacturer}", f"Model: {ident.model}",
                f"Revision: {ident.revision}", f"IMEI: {module.imei}", "+GCAP: +CGSM"]
    if module.dialect == "huawei":
        return [f"Manufacturer: {ident.manufacturer}", f"Model: {ident.model}",
                f"Revision: {ident.revision}", f"IMEI: {module.imei}",
                "+GCAP: +CGSM,+DS,+ES"]
    return [ident.manufacturer, ident.model, f"Revision: {ident.revision}"]


@command("+CGMI", "+GMI")
def manufacturer(module, cmd):
    if cmd.kind == "test":
        return []
    return [module.identity.manufacturer]


@command("+CGMM", "+GMM")
def model(module, cmd):
    if cmd.kind == "test":
        return []
    return [module.identity.model]


@command("+CGMR", "+GMR")
def revision(module, cmd):
    if cmd.kind == "test":
        return []
    if module.dialect == "simcom" and cmd.name == "+CGMR":
        return [f"+CGMR: {module.identity.revision}"]
    return [module.identity.revision]


@command("+CGSN", "+GSN")
def imei(module, cmd):
    if cmd.kind == "test":
        return []
    return [module.imei]


@command("+CMEE")
def cmee(module, cmd):
    return _bool_setting(module, cmd, "cmee", hi=2)


@command("+CSCS")
def cscs(module, cmd):
    if cmd.kind == "read":
        return [f'+CSCS: "{module.settings.cscs}"']
    if cmd.kind == "test":
        return ['+CSCS: ("GSM","IRA","UCS2")']
    if cmd.kind == "set":
        value = cmd.str_param(0).upper()
        if value not in ("GSM", "IRA", "UCS2"):
            raise AtError(50)
        module.settings.cscs = value
        return []
    raise AtError(50)


@command("+CPAS")
def cpas(module, cmd):
    if cmd.kind == "test":
        return ["+CPAS: (0-5)"]
    states = {leg.state for leg in module.calls}
    status = 3 if 4 in states else 4 if states else 0
    return [f"+CPAS: {status}"]


@command("+CFUN")
def cfun(module, cmd):
    if cmd.kind == "read":
        return [f"+CFUN: {module.cfun}"]
    if cmd.kind == "test":
        return ["+CFUN: (0,1,4),(0-1)"]
    fun = cmd.int_param(0, lo=0, hi=4)
    rst = cmd.int_param(1, 0, lo=0, hi=1)
    if fun not in (0, 1, 4):
        raise AtError(50)
    if rst == 1:
        module.timers.later(0.1, module.reset)
        return []
    old, module.cfun = module.cfun, fun
    if fun == 1 and old != 1:
        if old == 0:
            module.timers.later(0.2, module.sim_init)
        else:
            module.schedule_registration()
    elif fun != 1 and old == 1:
        module.lose_registration(0)
        if fun == 0:
            module.sim_ready = False
    return []


def require_sim(module, *, ready=True):
    sim = module.sim
    if sim is None or not module.powered or module.cfun == 0:
        raise AtError(10)
    if ready and not module.sim_ready:
        state = sim.pin_state
        raise AtError({"SIM PIN": 11, "SIM PUK": 12, "BLOCKED": 262}.get(state, 14))
    return sim


@command("+CPIN")
def cpin(module, cmd):
    if cmd.kind == "test":
        return []
    sim = require_sim(module, ready=False)
    if cmd.kind == "read":
        state = sim.cpin_code
        if state == "BLOCKED":
            raise AtError(262)
        return [f"+CPIN: {state}"]
    if cmd.kind != "set":
        raise AtError(50)
    code = cmd.str_param(0)
    state = sim.cpin_code
    if state in ("SIM PIN2", "SIM PUK2"):
        # TS 27.007 8.3: +CPIN answers whichever password the ME waits for;
        # PIN1 stays verified, so no +CPIN: READY URC and no re-attach.
        if state == "SIM PIN2":
            if not sim.enter_pin2(code):
                raise AtError(18 if sim.pin2_left <= 0 else 16)
        elif not sim.enter_puk2(code, cmd.str_param(1)):
            raise AtError(16)
        return []
    if state == "READY":
        raise AtError(3)
    if state == "SIM PIN":
        if not sim.enter_pin(code):
            raise AtError(12 if sim.pin_state == "SIM PUK" else 16)
    elif state == "SIM PUK":
        if not sim.enter_puk(code, cmd.str_param(1)):
            raise AtError(262 if sim.pin_state == "BLOCKED" else 16)
    else:
        raise AtError(262)
    module.urc("+CPIN: READY")
    module._sim_unlocked()
    return []


@command("+QPINC", dialects=Q)
def qpinc(module, cmd):
    sim = require_sim(module, ready=False)
    return [f'+QPINC: "SC",{sim.pin_left},{sim.puk_left}',
            f'+QPINC: "P2",{sim.pin2_left},{sim.puk2_left}']


@command("+SPIC", dialects=S)
def spic(module, cmd):
    sim = require_sim(module, ready=False)
    return [f"+SPIC: {sim.pin_left},{sim.pin2_left},{sim.puk_left},{sim.puk2_left}"]


@command("+CPWD")
def cpwd(module, cmd):
    """TS 27.007 8.5: change "SC" (PIN1) or "P2" (PIN2); a wrong old PIN2 counts
    down towards PUK2 like +CPIN does."""
    if cmd.kind == "test":
        return ['+CPWD: ("SC",8),("P2",8)']
    if cmd.kind != "set":
        raise AtError(50)
    sim = require_sim(module)
    facility = cmd.str_param(0).upper()
    old, new = cmd.str_param(1), cmd.str_param(2)
    if not (new.isdigit() and 4 <= len(new) <= 8):
        raise AtError(50)
    if facility == "P2":
        err = sim.change_pin2(old, new)
        if err is not None:
            raise AtError(err)
        return []
    if facility == "SC":
        if sim.pin is None or old != sim.pin:
            raise AtError(16)
        sim.pin = new
        return []
    raise AtError(50)


@command("+CIMI")
def cimi(module, cmd):
    if cmd.kind == "test":
        return []
    return [require_sim(module).imsi]


@command("+CCID")
def ccid(module, cmd):
    return [f"+CCID: {require_sim(module, ready=False).iccid}"]


@command("+QCCID", dialects=Q)
def qccid(module, cmd):
    return [f"+QCCID: {require_sim(module, ready=False).iccid}"]


@command("+CICCID", dialects=S)
def ciccid(module, cmd):
    return [f"+ICCID: {require_sim(module, ready=False).iccid}"]


@command("+CNUM")
def cnum(module, cmd):
    if cmd.kind == "test":
        return []
    sim = require_sim(module)
    if not sim.msisdn:
        return []
    kind = 145 if sim.msisdn.startswith("+") else 129
    return [f'+CNUM: "",{quote(sim.msisdn)},{kind}']


@command("+CSQ")
def csq(module, cmd):
    if cmd.kind == "test":
        return ["+CSQ: (0-31,99),(0-7,99)"]
    if module.cfun != 1 or not module.network.has_coverage(module):
        return ["+CSQ: 99,99"]
    return [f"+CSQ: {module.rssi},{module.ber}"]


def _reg(name):
    def handler(module, cmd):
        attr = name.lower()
        if cmd.kind == "set":
            setattr(module.settings, attr, cmd.int_param(0, 0, lo=0, hi=2))
            return []
        if cmd.kind == "read":
            return [module.reg_line(attr, getattr(module.settings, attr), urc=False)]
        if cmd.kind == "test":
            return [f"+{name}: (0-2)"]
        raise AtError(50)

    return handler


command("+CREG")(_reg("CREG"))
command("+CGREG")(_reg("CGREG"))
command("+CEREG")(_reg("CEREG"))


@command("+CGATT")
def cgatt(module, cmd):
    if cmd.kind == "read":
        return [f"+CGATT: {1 if module.registered else 0}"]
    if cmd.kind == "test":
        return ["+CGATT: (0,1)"]
    return []


@command("+COPS")
def cops(module, cmd):
    net = module.network
    if cmd.kind == "read":
        if not module.registered or module.serving is None:
            return [f"+COPS: {module.settings.cops_mode}"]
        op = net.operators[module.serving]
        fmt = module.settings.cops_format
        name = (op.long_name, op.short_name, op.mcc_mnc)[fmt]
        return [f"+COPS: {module.settings.cops_mode},{fmt},{quote(name)},{module.act}"]
    if cmd.kind == "test":
        if module.cfun != 1 or not net.has_coverage(module):
            return ["+COPS: ,,(0,1,2,3,4),(0,1,2)"]
        entries = []
        for op in net.operators.values():
            stat = 2 if op.mcc_mnc == module.serving else 1
            entries.append(f"({stat},{quote(op.long_name)},{quote(op.short_name)},"
                           f"{quote(op.mcc_mnc)},7)")
        return ["+COPS: " + ",".join(entries) + ",,(0,1,2,3,4),(0,1,2)"]
    if cmd.kind == "exec":
        return []
    mode = cmd.int_param(0, lo=0, hi=4)
    if mode == 3:
        module.settings.cops_format = cmd.int_param(1, 0, lo=0, hi=2)
        return []
    if mode in (1, 4):
        plmn = cmd.str_param(2)
        if plmn not in net.operators:
            if mode == 1:
                raise AtError(30)
            plmn = None
        module.settings.cops_mode = 1 if plmn else 0
        module.settings.cops_plmn = plmn
    else:
        module.settings.cops_mode = mode
        module.settings.cops_plmn = None
    if mode == 2:
        module.lose_registration(0)
    else:
        module.lose_registration(2)
        module.schedule_registration(0.5)
    return []


_ACT_NAMES = {7: ("FDD LTE", "LTE BAND 3", 1300), 2: ("WCDMA", "WCDMA 2100", 10700),
              0: ("GSM", "GSM 900", 62)}


@command("+QNWINFO", dialects=Q)
def qnwinfo(module, cmd):
    if not module.registered:
        return ["+QNWINFO: No Service"]
    act, band, channel = _ACT_NAMES.get(module.act, _ACT_NAMES[7])
    return [f'+QNWINFO: "{act}","{module.serving}","{band}",{channel}']


@command("+CPSI", dialects=S)
def cpsi(module, cmd):
    if not module.registered:
        return ["+CPSI: NO SERVICE,Online"]
    mcc, mnc = module.serving[:3], module.serving[3:]
    return [f"+CPSI: LTE,Online,{mcc}-{mnc},0x{module.lac:04X},{module.ci},1,EUTRAN-BAND3,"
            "1300,5,5,-94,-850,-600,15"]


@command("+QSPN", dialects=Q)
def qspn(module, cmd):
    if not module.registered:
        raise AtError(30)
    op = module.network.operators[module.serving]
    return [f'+QSPN: "{op.long_name}","{op.short_name}","",0,"{op.mcc_mnc}"']


@command("+QCFG", dialects=Q)
def qcfg(module, cmd):
    params = cmd.params()
    if not params:
        raise AtError(50)
    key = (params[0] or "").lower()
    if key == "ims":
        if len(params) > 1 and params[1] is not None:
            module.settings.ims = cmd.int_param(1, lo=0, hi=2)
            return []
        volte = 1 if module.registered and module.settings.ims and module.act == 7 else 0
        return [f'+QCFG: "ims",{module.settings.ims},{volte}']
    if len(params) > 1:
        return []
    return [f'+QCFG: "{key}",0']


_QIND_KEYS = ("all", "csq", "smsfull", "ring", "smsincoming", "ccinfo", "act", "mode")


@command("+QINDCFG", dialects=Q)
def qindcfg(module, cmd):
    if cmd.kind == "test":
        return ['+QINDCFG: ("all","csq","smsfull","ring","smsincoming","ccinfo"),(0,1),(0,1)']
    key = cmd.str_param(0).lower()
    if key not in _QIND_KEYS:
        raise AtError(50)
    flags = module.settings.qind
    if len(cmd.params()) < 2:
        return [f'+QINDCFG: "{key}",{flags.get(key, 0)}']
    value = cmd.int_param(1, lo=0, hi=1)
    if key == "all":
        for k in flags:
            flags[k] = value
    flags[key] = value
    return []


@command("+QDSIM", dialects=Q)
def qdsim(module, cmd):
    if cmd.kind == "read":
        return [f"+QDSIM: {module.active_slot}"]
    if cmd.kind == "test":
        return ["+QDSIM: (0,1)"]
    slot = cmd.int_param(0, lo=0, hi=1)
    if slot >= len(module.slots):
        raise AtError(50)
    if slot != module.active_slot:
        module.switch_slot(slot)
    return []


@command("+CLVL")
def clvl(module, cmd):
    return _bool_setting(module, cmd, "clvl", hi=5)


@command("+QMIC", dialects=Q)
def qmic(module, cmd):
    if cmd.kind == "read":
        return ["+QMIC: %d,%d" % module.settings.qmic]
    if cmd.kind == "set":
        tx = cmd.int_param(0, lo=0, hi=65535)
        module.settings.qmic = (tx, cmd.int_param(1, tx, lo=0, hi=65535))
        return []
    return ["+QMIC: (0-65535),(0-65535)"]


@command("+QRXGAIN", dialects=Q)
def qrxgain(module, cmd):
    if cmd.kind == "read":
        return [f"+QRXGAIN: {module.settings.qrxgain}"]
    if cmd.kind == "set":
        module.settings.qrxgain = cmd.int_param(0, lo=0, hi=65535)
        return []
    return ["+QRXGAIN: (0-65535)"]


@command("+QPCMV", dialects=Q)
def qpcmv(module, cmd):
    if cmd.kind == "read":
        return [f"+QPCMV: {int(module.settings.pcm)},0"]
    if cmd.kind == "test":
        return ["+QPCMV: (0,1),(0-2)"]
    module.settings.pcm = cmd.int_param(0, lo=0, hi=1) == 1
    cmd.int_param(1, 0, lo=0, hi=2)
    return []


@command("+CPCMREG", dialects=S)
def cpcmreg(module, cmd):
    if cmd.kind == "read":
        return [f"+CPCMREG: {int(module.settings.pcm)}"]
    if cmd.kind == "test":
        return ["+CPCMREG: (0,1)"]
    module.settings.pcm = cmd.int_param(0, lo=0, hi=1) == 1
    return []


@command("+CLIP")
def clip(module, cmd):
    if cmd.kind == "read":
        return [f"+CLIP: {module.settings.clip},1"]
    return _bool_setting(module, cmd, "clip")


@command("+COLP")
def colp(module, cmd):
    return _bool_setting(module, cmd, "colp")


@command("+CMICGAIN", "+COUTGAIN", dialects=S)
@command("+CMIC", dialects=S + ("huawei",))
def simcom_gain(module, cmd):
    """SIMCom gain levels (SIM7500/7600 manual): CMICGAIN/COUTGAIN 0-8, CMIC 0-15;
    Huawei's AT+CMIC (MU509 spec, audio commands) takes a level in the same place."""
    hi = 15 if cmd.name == "+CMIC" else 8
    store = module.settings.simcom_gain
    if cmd.kind == "read":
        return [f"{cmd.name}: {store.get(cmd.name, 3)}"]
    if cmd.kind == "test":
        return [f"{cmd.name}: (0-{hi})"]
    store[cmd.name] = cmd.int_param(0, lo=0, hi=hi)
    return []


@command("+CSSN")
def cssn(module, cmd):
    if cmd.kind == "read":
        return ["+CSSN: %d,%d" % module.settings.cssn]
    if cmd.kind == "test":
        return ["+CSSN: (0,1),(0,1)"]
    module.settings.cssn = (cmd.int_param(0, 0, lo=0, hi=1), cmd.int_param(1, 0, lo=0, hi=1))
    return []


@command("+QURCCFG", "+QSCLK", "+CTZU", "+CTZR", "+CMMS", "+QAUDMOD",
         "+CGDCONT", "+QICSGP", "+CRC")
def accepted(module, cmd):
    """Settings a gateway sends that change nothing observable here."""
    if cmd.kind == "read":
        return [f"{cmd.name}: 0"]
    return []
