"""Simulated cellular modules and mobile network (F-106).

``Network(reactor)`` is the entry point: add modules (each a pair of ptys that
speak a Quectel EC25, SIMCom SIM7600 or Huawei AT dialect), remote phones, then
``start()``.  See ``docs`` in the package modules for the sources of each
behaviour.
"""

from . import at_basic, at_http, at_huawei, at_sms, ussd, voice  # noqa: F401  (register AT handlers)
from .module import SimulatedModule
from .network import Network
from .phones import PhoneBehaviour, RemotePhone
from .sim import Operator, SimCard

__all__ = ["Network", "SimulatedModule", "PhoneBehaviour", "RemotePhone", "SimCard", "Operator"]
