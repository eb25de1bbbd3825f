"""SIM switch drivers (F-104): choose which of a line's 1-4 SIM slots is bound.

* :class:`SimulatorSwitch` asks the simulated module to swap cards.
* :class:`QdsimSwitch` uses the Quectel dual-SIM command ``AT+QDSIM=<0|1>`` (Quectel
  "EC2x AT Commands Manual", DSSS): radio off (``AT+CFUN=0``), switch, radio on.
* :class:`GpioSwitch` drives an external SIM multiplexer through the Linux GPIO
  character device with libgpiod's ``gpioset`` tool (v1 syntax ``gpioset <chip>
  <line>=<v> ...``), so we need neither sysfs GPIO (deprecated) nor our own ioctls.
  The slot number is written in binary on ``lines`` (LSB first).

A switch only changes the card; the line service re-initialises the SIM and the line
afterwards (``LineService.switch_sim``).
"""

from __future__ import annotations

from twisted.internet import defer, error, protocol
from twisted.logger import Logger

log = Logger()


class SwitchError(Exception):
    pass


class NoSwitch:
    name = "none"
    slots = 1

    def select(self, slot: int):
        if slot != 0:
            return defer.fail(SwitchError("this line has a single SIM slot"))
        return defer.succeed(0)


class SimulatorSwitch:
    name = "simulator"

    def __init__(self, select_fn, slots: int):
        self._select = select_fn
        self.slots = slots

    def select(self, slot: int):
        if not 0 <= slot < self.slots:
            return defer.fail(SwitchError(f"slot {slot} outside 0..{self.slots - 1}"))
        return defer.maybeDeferred(self._select, slot).addCallback(lambda _: slot)


class QdsimSwitch:
    name = "qdsim"
    slots = 2

    def __init__(self, modem_fn):
        self._modem = modem_fn  # returns the current Modem (it changes after a replug)

    @defer.inlineCallbacks
    def select(self, slot: int):
        if slot not in (0, 1):
            raise SwitchError("AT+QDSIM has slots 0 and 1")
        modem = self._modem()
        if modem is None:
            raise SwitchError("module absent")
        yield modem.cmd("AT+CFUN=0", kind="reset")
        try:
            yield modem.cmd(f"AT+QDSIM={slot}", kind="sim")
        finally:
            yield modem.cmd("AT+CFUN=1", kind="reset")
        return slot


class _Collect(protocol.ProcessProtocol):
    def __init__(self, done: defer.Deferred):
        self.done = done
        self.err = b""

    def errReceived(self, data):
        self.err = (self.err + data)[-2000:]

    def processEnded(self, reason):
        code = reason.value.exitCode if isinstance(reason.value, error.ProcessTerminated) else 0
        self.done.callback((code, self.err.decode("utf-8", "replace").strip()))


class GpioSwitch:
    name = "gpio"

    def __init__(self, reactor, chip: str, lines, *, gpioset: str = "gpioset", env=None):
        self.reactor = reactor
        self.chip = chip
        self.lines = tuple(int(x) for x in lines)
        self.gpioset = gpioset
        self.env = env
        self.slots = 2 ** len(self.lines)

    def argv(self, slot: int) -> list[str]:
        return [self.gpioset, self.chip] + [
            f"{line}={(slot >> bit) & 1}" for bit, line in enumerate(self.lines)]

    @defer.inlineCallbacks
    def select(self, slot: int):
        if not 0 <= slot < self.slots:
            raise SwitchError(f"slot {slot} outside 0..{self.slots - 1}")
        argv = self.argv(slot)
        done = defer.Deferred()
        try:
            self.reactor.spawnProcess(_Collect(done), argv[0], argv, env=self.env)
        except OSError as exc:
            raise SwitchError(f"cannot run {argv[0]}: {exc}") from None
        code, err = yield done
        if code != 0:
            raise SwitchError(f"{' '.join(argv)} exited {code}: {err}")
        log.info("GPIO SIM switch {chip} set slot {slot}", chip=self.chip, slot=slot)
        return slot
