"""SIM cards and message stores of the simulated network.

A :class:`SimCard` is the subscriber: the network routes calls and SMS to its
MSISDN wherever it is inserted.  PIN/PUK counting follows 3GPP TS 27.007
section 8.3 (``+CPIN``): three wrong PINs block the card behind its PUK, ten
wrong PUKs block it for good.  PIN2 (TS 27.007 8.3 ``SIM PIN2``/``SIM PUK2``,
8.5 ``+CPWD="P2"``) is asked for only after an operation that needs it was
refused with ``+CME ERROR: 17`` (SIM PIN2 required); three wrong PIN2s want
PUK2 (``+CME ERROR: 18``).  The card stays usable meanwhile: PIN1 is still
verified.  The SMS store follows TS 27.005 section 3.1
(``<stat>`` 0..3, indexes starting at 1, a finite number of places).
"""

from __future__ import annotations

import attrs

PIN_ATTEMPTS = 3
PUK_ATTEMPTS = 10

#: TS 27.005 <stat> values (PDU mode) and their text mode names.
STAT_NAMES = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT", 4: "ALL"}
STAT_CODES = {name: code for code, name in STAT_NAMES.items()}


@attrs.frozen
class Operator:
    """A PLMN of the simulated network (TS 27.007 +COPS)."""

    mcc_mnc: str
    long_name: str
    short_name: str


DEFAULT_OPERATORS = (
    Operator("00101", "Simulated Mobile", "SimMobile"),
    Operator("00102", "Test Telecom", "TestTel"),
)


@attrs.define
class StoredSms:
    index: int
    stat: int
    pdu: str  # hex, SMSC address included (TS 27.005 +CMGR PDU mode)
    tpdu_len: int


@attrs.define
class SmsStore:
    """A finite, indexed message store ("SM" on the SIM, "ME" in the module)."""

    name: str
    capacity: int = 30
    messages: dict = attrs.field(factory=dict)

    @property
    def used(self) -> int:
        return len(self.messages)

    @property
    def full(self) -> bool:
        return self.used >= self.capacity

    def add(self, stat: int, pdu: str, tpdu_len: int) -> int | None:
        """Store a message; return its index or ``None`` when full."""
        if self.full:
            return None
        for index in range(1, self.capacity + 1):
            if index not in self.messages:
                self.messages[index] = StoredSms(index, stat, pdu, tpdu_len)
                return index
        return None

    def get(self, index: int) -> StoredSms | None:
        return self.messages.get(index)

    def delete(self, index: int) -> bool:
        return self.messages.pop(index, None) is not None

    def delete_flagged(self, flag: int) -> None:
        """``AT+CMGD=<index>,<delflag>`` 1..4 (TS 27.005 3.5.4)."""
        keep = {
            1: lambda m: m.stat != 1,
            2: lambda m: m.stat not in (1, 3),
            3: lambda m: m.stat not in (1, 2, 3),
            4: lambda m: False,
        }[flag]
        self.messages = {i: m for i, m in self.messages.items() if keep(m)}

    def listing(self, stat: int) -> list[StoredSms]:
        return [
            m for _, m in sorted(self.messages.items()) if stat == 4 or m.stat == stat
        ]


@attrs.define
class SimCard:
    """A subscriber's card; state (PIN counters, store, balance) lives here."""

    iccid: str
    imsi: str
    msisdn: str
    operator: str = "00101"  # home PLMN (MCC+MNC)
    pin: str | None = None  # None: PIN check disabled
    puk: str = "12345678"
    balance: float = 10.0
    currency: str = "USD"
    store_capacity: int = 30
    pin_left: int = PIN_ATTEMPTS
    puk_left: int = PUK_ATTEMPTS
    unlocked: bool = False
    pin2: str = "2222"
    puk2: str = "22222222"
    pin2_left: int = PIN_ATTEMPTS
    puk2_left: int = PUK_ATTEMPTS
    pin2_wanted: bool = False  # the last PIN2-guarded operation was refused
    last_mr: int = 0  # EF_SMSS byte 1 (TS 31.102 4.2.28): last used TP-MR
    store: SmsStore = attrs.field(default=None)

    def __attrs_post_init__(self):
        if self.store is None:
            self.store = SmsStore("SM", self.store_capacity)

    @property
    def pin_state(self) -> str:
        """TS 27.007 +CPIN <code>: READY, SIM PIN, SIM PUK or blocked."""
        if self.puk_left <= 0:
            return "BLOCKED"
        if self.pin_left <= 0:
            return "SIM PUK"
        if self.pin is None or self.unlocked:
            return "READY"
        return "SIM PIN"

    @property
    def cpin_code(self) -> str:
        """What ``AT+CPIN?`` reports: PIN1's state first; with PIN1 done, ``SIM PIN2``
        or ``SIM PUK2`` while a refused PIN2 operation waits (TS 27.007 8.3)."""
        state = self.pin_state
        if state != "READY" or not self.pin2_wanted or self.puk2_left <= 0:
            return state
        return "SIM PUK2" if self.pin2_left <= 0 else "SIM PIN2"

    def demand_pin2(self) -> int:
        """An operation needs PIN2 (fixed dialling, a control command): remember it
        and return the CME error the module answers (17 PIN2 / 18 PUK2 required)."""
        self.pin2_wanted = True
        return 18 if self.pin2_left <= 0 else 17

    def enter_pin2(self, pin2: str) -> bool:
        if self.pin_state != "READY" or self.pin2_left <= 0:
            return False
        if pin2 == self.pin2:
            self.pin2_left = PIN_ATTEMPTS
            self.pin2_wanted = False
            return True
        self.pin2_left -= 1
        return False

    def enter_puk2(self, puk2: str, new_pin2: str) -> bool:
        if self.pin_state != "READY" or self.pin2_left > 0 or self.puk2_left <= 0:
            return False
        if puk2 == self.puk2:
            self.pin2 = new_pin2
            self.pin2_left = PIN_ATTEMPTS
            self.puk2_left = PUK_ATTEMPTS
            self.pin2_wanted = False
            return True
        self.puk2_left -= 1
        return False

    def change_pin2(self, old: str, new: str) -> int | None:
        """``AT+CPWD="P2",<old>,<new>`` (TS 27.007 8.5): None when changed, else the
        CME error (16 incorrect password, 18 PUK2 required)."""
        if self.pin2_left <= 0:
            self.pin2_wanted = True
            return 18
        if old != self.pin2:
            self.pin2_left -= 1
            if self.pin2_left <= 0:
                self.pin2_wanted = True
                return 18
            return 16
        self.pin2 = new
        self.pin2_left = PIN_ATTEMPTS
        return None

    def reset_session(self) -> None:
        """Power cycle or removal: the PIN must be entered again."""
        self.unlocked = False
        self.pin2_wanted = False

    def enter_pin(self, pin: str) -> bool:
        if self.pin_state != "SIM PIN":
            return False
        if pin == self.pin:
            self.pin_left = PIN_ATTEMPTS
            self.unlocked = True
            return True
        self.pin_left -= 1
        return False

    def enter_puk(self, puk: str, new_pin: str) -> bool:
        if self.pin_state != "SIM PUK":
            return False
        if puk == self.puk:
            self.pin = new_pin
            self.pin_left = PIN_ATTEMPTS
            self.puk_left = PUK_ATTEMPTS
            self.unlocked = True
            return True
        self.puk_left -= 1
        return False

    def describe(self) -> dict:
        return {
            "iccid": self.iccid,
            "imsi": self.imsi,
            "msisdn": self.msisdn,
            "operator": self.operator,
            "pin_state": self.pin_state,
            "pin2_state": self.cpin_code if self.cpin_code.endswith("2") else "READY",
            "balance": self.balance,
            "sms_used": self.store.used,
            "sms_capacity": self.store.capacity,
        }


def make_sim(module_no: int, slot: int, *, operator: str = "00101", pin=None) -> SimCard:
    """A SIM with predictable, fictional identities for module ``module_no``
    (1-based) and slot ``slot`` (0-based).  Numbers are in the 555-01xx range
    reserved for fiction."""
    seq = (module_no - 1) * 4 + slot + 1
    return SimCard(
        iccid=f"8900100000000{seq:05d}1",
        imsi=f"{operator}{seq:010d}",
        msisdn=f"+1212555{100 + seq:04d}",
        operator=operator,
        pin=pin,
    )
