"""Early re-reads of an SMS whose read, hand-over or delete failed (scripted module,
Clock).

The module keeps a message until we delete it (AT+CNMI=2,1: store and notify), so a
failure loses nothing; but waiting for the next periodic drain (60 s, and only of
"SM") delays it.  The location is read again a few seconds later, the wait doubling
per failure; the copy is deleted only after the handler's Deferred fired, and a
message already handed over is deleted without a second hand-over.
"""

from datetime import datetime, timezone

from twisted.internet import defer

from goip_tw.modem import pdu
from goip_tw.modem.smsrx import SmsMixin

from .scripted import make, settle

PHONE = "+15550001"
QUECTEL_ID = ("Quectel", "EC25")


class FakeStore:
    """The module's message store as AT+CMGR / AT+CMGD / AT+CMGL see it.  ``faults``
    maps an index to the answers its next reads give before the real one (a string
    is an error line, None is silence: the command times out)."""

    def __init__(self, clock, log):
        self.clock = clock
        self.log = log
        self.msgs: dict[int, tuple[str, int]] = {}
        self.faults: dict[int, list] = {}
        self.delete_faults: dict[int, list] = {}
        self.reads: list[tuple[float, int]] = []

    def script(self):
        return {"AT+CMGR=*": self.cmgr, "AT+CMGD=*": self.cmgd, "AT+CMGL=4": self.cmgl,
                "AT+CPMS?": lambda cmd: f'+CPMS: "SM",{len(self.msgs)},30\r\n\r\nOK'}

    def cmgr(self, cmd):
        index = int(cmd.split("=")[1])
        self.reads.append((self.clock.seconds(), index))
        if self.faults.get(index):
            return self.faults[index].pop(0)
        if index not in self.msgs:
            return "+CMS ERROR: 321"
        hexpdu, n = self.msgs[index]
        return f"+CMGR: 1,,{n}\r\n{hexpdu}\r\n\r\nOK"

    def cmgd(self, cmd):
        index = int(cmd.split("=")[1])
        if self.delete_faults.get(index):
            return self.delete_faults[index].pop(0)
        if self.msgs.pop(index, None) is None:
            return "+CMS ERROR: 321"
        self.log.append(("deleted", index))
        return "OK"

    def cmgl(self, cmd):
        lines = [f"+CMGL: {i},1,,{n}\r\n{h}" for i, (h, n) in sorted(self.msgs.items())]
        return "\r\n".join(lines + ["", "OK"]) if lines else "OK"


def deliver_pdu(text, second=0):
    ts = datetime(2024, 5, 1, 12, 0, second, tzinfo=timezone.utc)
    return pdu.encode_deliver(PHONE, text, ts)[0]


def rig():
    """(modem, transport, clock, store, log); the handlers log what they committed and
    fail while ``failing`` holds the text (or report reference) for a count."""
    log = []
    modem, t, clock = make(QUECTEL_ID)
    store = FakeStore(clock, log)
    t.script.update(store.script())
    failing: dict = {}

    def handler(event):
        what = getattr(event, "text", None)
        if what is None:
            what = event.message_ref
        if failing.get(what, 0):
            failing[what] -= 1
            log.append(("refused", what))
            return defer.fail(RuntimeError("store write failed"))
        log.append(("committed", what))
        return defer.succeed(None)
    modem.sms_handler = handler
    modem.report_handler = handler
    return modem, t, clock, store, log, failing


def advance(clock, seconds, step=0.01):
    for _ in range(int(round(seconds / step))):
        clock.advance(step)


def test_transient_cmgr_error_is_read_again_within_seconds():
    modem, t, clock, store, log, _ = rig()
    store.msgs[3] = deliver_pdu("hello")
    store.faults[3] = ["+CMS ERROR: 314"]  # SIM busy
    t.urc('+CMTI: "SM",3')
    advance(clock, 1.0)
    assert log == [] and 3 in store.msgs
    advance(clock, 3.0)
    assert log == [("committed", "hello"), ("deleted", 3)]
    assert [i for _, i in store.reads] == [3, 3]
    assert 1.5 <= store.reads[1][0] - store.reads[0][0] <= 2.5
    advance(clock, 600, step=1.0)
    assert [i for _, i in store.reads] == [3, 3]  # nothing left to retry
    modem.stop()


def test_cmgr_timeout_is_read_again_after_it():
    modem, t, clock, store, log, _ = rig()
    store.msgs[3] = deliver_pdu("late")
    store.faults[3] = [None]  # no answer: AT+CMGR times out (10 s)
    t.urc('+CMTI: "SM",3')
    advance(clock, 11.0)
    assert log == [] and 3 in store.msgs
    advance(clock, 4.0)
    assert log == [("committed", "late"), ("deleted", 3)]
    advance(clock, 600, step=1.0)
    assert len(store.reads) == 2
    modem.stop()


def test_handler_failure_is_offered_again_and_deleted_only_once_committed():
    modem, t, clock, store, log, failing = rig()
    store.msgs[5] = deliver_pdu("keep me")
    failing["keep me"] = 1
    t.urc('+CMTI: "SM",5')
    advance(clock, 1.0)
    assert log == [("refused", "keep me")] and 5 in store.msgs
    assert not [c for c in t.sent if c.startswith("AT+CMGD")]
    advance(clock, 3.0)
    assert log == [("refused", "keep me"), ("committed", "keep me"), ("deleted", 5)]
    advance(clock, 600, step=1.0)
    assert len(store.reads) == 2
    modem.stop()


def test_status_report_in_sr_storage_is_read_again():
    """The periodic drain lists "SM" only; a report the module keeps in "SR" relies on
    the early re-read."""
    modem, t, clock, store, log, failing = rig()
    scts = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    store.msgs[2] = pdu.encode_status_report(77, PHONE, scts, scts, 0)
    failing[77] = 2
    t.urc('+CDSI: "SR",2')
    advance(clock, 10.0)
    assert log == [("refused", 77), ("refused", 77), ("committed", 77), ("deleted", 2)]
    assert 'AT+CPMS="SR"' in t.sent and t.sent[-1] == 'AT+CPMS="SM","SM","SM"'
    modem.stop()


def test_failed_delete_is_retried_without_a_second_hand_over():
    modem, t, clock, store, log, _ = rig()
    store.msgs[7] = deliver_pdu("once")
    store.delete_faults[7] = ["+CMS ERROR: 500"]
    t.urc('+CMTI: "SM",7')
    advance(clock, 1.0)
    assert log == [("committed", "once")] and 7 in store.msgs
    advance(clock, 3.0)
    assert log == [("committed", "once"), ("deleted", 7)]
    assert len(store.reads) == 2
    modem.stop()


def test_permanent_failure_backs_off_and_never_blocks_other_indices():
    modem, t, clock, store, log, failing = rig()
    store.msgs[3] = deliver_pdu("poison", 1)
    store.msgs[4] = deliver_pdu("fine", 2)
    failing["poison"] = 10 ** 6
    t.urc('+CMTI: "SM",3')
    t.urc('+CMTI: "SM",4')
    advance(clock, 1.0)
    assert ("committed", "fine") in log and ("deleted", 4) in log
    hour = 3600.0
    advance(clock, hour, step=0.5)
    store.msgs[5] = deliver_pdu("later", 3)
    t.urc('+CMTI: "SM",5')
    advance(clock, 1.0)
    assert log[-2:] == [("committed", "later"), ("deleted", 5)]
    times = [at for at, i in store.reads if i == 3]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(later >= earlier - 0.1 for earlier, later in zip(gaps, gaps[1:]))
    assert gaps[0] < 3 and max(gaps) <= SmsMixin.retry_max + 1
    assert len(times) <= 20  # 2, 4, ... 256 s, then every 300 s
    assert 3 in store.msgs and ("deleted", 3) not in log
    modem.stop()
    assert not clock.getDelayedCalls()


def test_periodic_drain_taking_a_message_cancels_its_retry():
    modem, t, clock, store, log, failing = rig()
    store.msgs[6] = deliver_pdu("drained")
    failing["drained"] = 1
    t.urc('+CMTI: "SM",6')
    settle(clock)
    assert log == [("refused", "drained")]
    modem.drain_sms()
    settle(clock)
    assert log == [("refused", "drained"), ("committed", "drained"), ("deleted", 6)]
    assert not clock.getDelayedCalls()
    advance(clock, 10.0)
    assert len(store.reads) == 1
    modem.stop()


def test_port_loss_drops_the_retries():
    modem, t, clock, store, log, failing = rig()
    store.msgs[3] = deliver_pdu("x")
    failing["x"] = 1
    t.urc('+CMTI: "SM",3')
    settle(clock)
    assert clock.getDelayedCalls()
    modem.engine.connectionLost(None)
    assert not clock.getDelayedCalls()


def test_refused_long_message_is_read_again_whole_and_handed_over_once():
    modem, t, clock, store, log, failing = rig()
    text = "a long message in two parts " * 7
    ts = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    parts = pdu.encode_deliver(PHONE, text, ts, concat_ref=42)
    assert len(parts) == 2
    store.msgs[8], store.msgs[9] = parts
    failing[text] = 1
    t.urc('+CMTI: "SM",8')
    t.urc('+CMTI: "SM",9')
    advance(clock, 1.0)
    assert log == [("refused", text)] and {8, 9} <= set(store.msgs)
    advance(clock, 3.0)
    assert log[1:] == [("committed", text), ("deleted", 9), ("deleted", 8)]  # part 1 last
    advance(clock, 600, step=1.0)
    assert sorted(i for _, i in store.reads) == [8, 8, 9, 9]
    modem.stop()


def test_parts_left_by_a_crash_between_deletes_come_back_under_the_message_key():
    """On a real network each part of a long SMS has its own TP-SCTS, and the message
    is keyed by part 1's.  A crash after the first delete leaves parts on the module;
    read again after the restart they must carry the same key, so the gateway drops
    them as the stored message's duplicate instead of storing an incomplete copy."""
    text = "three parts, each stamped a second later " * 8
    stamped = [pdu.encode_deliver(PHONE, text, datetime(2024, 5, 1, 12, 0, s, tzinfo=timezone.utc),
                                  concat_ref=7) for s in range(3)]
    assert {len(p) for p in stamped} == {3}
    modem, t, clock, store, log, _ = rig()
    for seq in range(3):
        store.msgs[4 + seq] = stamped[seq][seq]
    keys = []
    modem.sms_handler = lambda event: keys.append((event.dedupe_key, event.missing)) or None
    deletes = []

    def crash_after_first_delete(cmd):
        deletes.append(cmd)
        return store.cmgd(cmd) if len(deletes) == 1 else None  # then silence: killed
    t.script["AT+CMGD=*"] = crash_after_first_delete
    for index in (4, 5, 6):
        t.urc(f'+CMTI: "SM",{index}')
    advance(clock, 2.0)
    assert len(keys) == 1 and keys[0][1] == () and len(store.msgs) == 2
    modem.stop()

    again, t2, clock2, store2, _, _ = rig()
    store2.msgs.update(store.msgs)
    again.sms_handler = lambda event: keys.append((event.dedupe_key, event.missing)) or None
    for index in sorted(store.msgs):
        t2.urc(f'+CMTI: "SM",{index}')
    advance(clock2, 310, step=1.0)  # the module's reassembly timeout (300 s) hands them on
    assert len(keys) == 2 and keys[1][1]  # incomplete: a part is gone
    assert keys[1][0] == keys[0][0]
    again.stop()
