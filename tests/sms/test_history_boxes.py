"""F-506 inbox/outbox per line: newest first, paged, delete per line and all."""

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from goip_tw.sms.history import HistoryError, SmsHistory
from goip_tw.sms.inbound import InboundSms
from tests.sms.inbound_support import part, store  # noqa: F401


def _out(conn, line, peer, text, now):
    conn.execute("INSERT INTO sms_history (direction, line, peer, text, parts, state, "
                 "message_id, created_at) VALUES ('out', ?, ?, ?, 1, 'sent', ?, ?)",
                 (line, peer, text, 1000 + int(now), now))


@pytest_twisted.inlineCallbacks
def fill(store):
    clock = Clock()
    inbound = InboundSms(store, clock)
    for i in range(45):
        clock.advance(1)
        yield inbound.part_received(part(f"in {i}", line=1 + i % 3, scts=str(i)))
    for i in range(5):
        yield store.write(_out, 2, "+100", f"out {i}", float(i))


@pytest_twisted.inlineCallbacks
def test_inbox_newest_first_paged(store):
    yield fill(store)
    h = SmsHistory(store)
    seen, before = [], None
    for _ in range(10):
        page = yield h.page("inbox", before_id=before, limit=20)
        seen.extend(e.text for e in page.entries)
        before = page.next_before
        if before is None:
            break
    assert seen == [f"in {i}" for i in reversed(range(45))]
    assert (yield h.count("inbox")) == 45


@pytest_twisted.inlineCallbacks
def test_per_line_and_outbox(store):
    yield fill(store)
    h = SmsHistory(store)
    page = yield h.page("inbox", line=2, limit=3)
    assert [e.text for e in page.entries] == ["in 43", "in 40", "in 37"]
    assert {e.line for e in page.entries} == {2} and page.next_before == page.entries[-1].id
    out = yield h.page("outbox", line=2)
    assert [(e.box, e.peer, e.text) for e in out.entries][0] == ("outbox", "+100", "out 4")
    assert out.next_before is None and len(out.entries) == 5
    found = yield h.page("inbox", search="in 4")
    assert {e.text for e in found.entries} == {"in 4", "in 40", "in 41", "in 42", "in 43", "in 44"}


@pytest_twisted.inlineCallbacks
def test_delete_per_line_then_all(store):
    yield fill(store)
    h = SmsHistory(store)
    assert (yield h.delete("inbox", line=1)) == 15
    assert (yield h.count("inbox", line=1)) == 0
    assert (yield h.count("inbox", line=2)) == 15
    assert (yield h.count("outbox")) == 5
    assert (yield h.delete_all()) == 35
    assert (yield h.count("inbox")) == 0 and (yield h.count("outbox")) == 0


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("kw,field", [
    ({"box": "trash"}, "box"), ({"box": "inbox", "line": 0}, "line"),
    ({"box": "inbox", "line": "1; DROP TABLE sms_history"}, "line"),
    ({"box": "inbox", "limit": 0}, "limit"), ({"box": "inbox", "limit": 10_000}, "limit"),
    ({"box": "inbox", "before_id": -1}, "before_id"), ({"box": "inbox", "search": "x" * 101}, "search"),
])
def test_bad_arguments_name_the_field(store, kw, field):
    h = SmsHistory(store)
    with pytest.raises(HistoryError, match=f"^{field}:"):
        yield h.page(**kw)
    rows = yield store.query("SELECT COUNT(*) FROM sms_history")
    assert rows[0][0] == 0


@pytest_twisted.inlineCallbacks
def test_deleting_the_inbox_leaves_no_copy_of_the_text(store):
    yield fill(store)
    yield SmsHistory(store).delete("inbox")
    rows = yield store.query("SELECT COUNT(*) FROM sms_inbound_part WHERE text != ''")
    assert rows[0][0] == 0
