"""Driver selection by AT+CGMI / AT+CGMM, or forced by name from the config."""

from __future__ import annotations

from goip_tw.modem.drivers.base import Driver, NotSupported
from goip_tw.modem.drivers.huawei import Huawei
from goip_tw.modem.drivers.quectel import Quectel, QuectelUac
from goip_tw.modem.drivers.simcom import Simcom

DRIVERS: dict[str, type[Driver]] = {
    "generic": Driver, "quectel": Quectel, "quectel-uac": QuectelUac,
    "simcom": Simcom, "huawei": Huawei,
}

__all__ = ["Driver", "NotSupported", "DRIVERS", "select_driver", "vendor_urcs"]


def select_driver(manufacturer: str, model_name: str, forced: str | None = None) -> Driver:
    """Return a driver instance; ``forced`` ("quectel", ...) wins over detection."""
    if forced and forced != "auto":
        try:
            return DRIVERS[forced]()
        except KeyError:
            raise ValueError(f"modem driver {forced!r} unknown; choose from {sorted(DRIVERS)}") from None
    for cls in (Quectel, Simcom, Huawei):
        if cls.matches(manufacturer or "", model_name or ""):
            return cls()
    return Driver()


def vendor_urcs() -> dict[str, bool]:
    """Every driver's URCs.  Before the vendor is known a module's boot URCs (SIMCom
    ``SMS DONE``/``PB DONE``/``Call Ready``/``+STIN: 25``, Quectel ``+QUSIM: 1``/
    ``+QIND: SMS DONE``, Huawei ``^SYSSTART``/``^SIMST: 1``) can cross our identity
    commands on the wire; recognised as URCs they are not taken for an answer.  Only
    whole lines (bare URCs) or the name before a colon match, so an answer such as
    ``SIMCOM INCORPORATED`` or ``Quectel`` is never one."""
    out: dict[str, bool] = {}
    for cls in DRIVERS.values():
        out.update(cls.urcs)
    return out
