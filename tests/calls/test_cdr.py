"""CDR rows in a real SQLite store, billing by period (F-470), derived figures (F-304/306)."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from goip_tw.calls.cdr import OUTGOING, Cdr, CdrRepository, billed
from goip_tw.calls.schema import MIGRATIONS
from goip_tw.store.sqlite import SqliteStore



@pytest.mark.parametrize("duration,period,expected", [
    (68, 60, (2, 120)), (60, 60, (1, 60)), (0.2, 60, (1, 60)), (0, 60, (0, 0)),
    (61, 1, (61, 61)), (59.9999, 60, (1, 60)),
])
def test_billing(duration, period, expected):
    assert billed(duration, period) == expected


def test_migration_ids_in_range():
    assert all(200 <= mid <= 299 for mid, _, _ in MIGRATIONS)


@pytest.fixture
def store(tmp_path, monkeypatch):
    # Only our own migrations: other areas' schemas are not under test here.
    monkeypatch.setattr("goip_tw.store.migrations.AREA_MODULES", ("goip_tw.calls.schema",))
    s = SqliteStore(str(tmp_path / "t.sqlite"), reactor=reactor)
    pytest_twisted.blockon(s.start())
    yield s
    pytest_twisted.blockon(s.stop())


def out_call(t, answered_for=None, line=1, iccid="8986001", **kw):
    answer = None if answered_for is None else t + 5
    end = t + 10 if answered_for is None else t + 5 + answered_for
    return Cdr(direction=OUTGOING, setup_time=t, end_time=end, answer_time=answer,
               line=line, iccid=iccid, **kw)


@pytest_twisted.inlineCallbacks
def test_row_round_trip(store):
    repo = CdrRepository(store)
    cdr = Cdr(direction=OUTGOING, line=2, slot="B", iccid="898600", caller_before="101",
              caller_after="101", callee_before="8613012345678", callee_after="13012345678",
              sip_call_id="abc@h", setup_time=100.0, ring_time=101.0, answer_time=103.0,
              end_time=171.0, end_side="sip", mobile_cause=16, sip_code=None, codec="PCMA",
              rtp_loss=0.01, rtp_jitter_ms=3.5, one_way_audio=True)
    rowid = yield repo.record(cdr)
    (row,) = yield repo.by_call_id("abc@h")
    assert row["id"] == rowid
    assert (row["line"], row["slot"], row["iccid"]) == (2, "B", "898600")
    assert (row["callee_before"], row["callee_after"]) == ("8613012345678", "13012345678")
    assert (row["duration"], row["billed_periods"], row["billable_seconds"]) == (68, 2, 120)
    assert row["one_way_audio"] == 1 and row["codec"] == "PCMA"
    assert row["ring_time"] == 101.0 and row["end_side"] == "sip"


@pytest_twisted.inlineCallbacks
def test_figures(store):
    repo = CdrRepository(store, short_call_seconds=10)
    calls = [out_call(0, 100), out_call(100, 3), out_call(200, 5), out_call(300),
             out_call(400), out_call(500, line=2, answered_for=60)]
    for c in calls:
        yield repo.record(c)
    f = yield repo.figures(line=1)
    assert (f.total, f.connected) == (5, 3)
    assert f.asr == pytest.approx(0.6)
    assert f.acd == pytest.approx(36)
    assert f.consecutive_no_answer == 2
    assert f.consecutive_short == 2
    assert f.consecutive_no_ring == 2
    everything = yield repo.figures()
    assert everything.total == 6
    sim = yield repo.figures(iccid="8986001")
    assert sim.total == 6
    today = yield repo.figures(line=1, since=300)
    assert (today.total, today.connected) == (2, 0)
    empty = yield repo.figures(line=9)
    assert empty.asr is None and empty.acd is None


@pytest_twisted.inlineCallbacks
def test_talk_by_iccid(store):
    repo = CdrRepository(store)
    yield repo.record(out_call(0, 100, iccid="A"))
    yield repo.record(out_call(200, 20, iccid="A"))
    yield repo.record(out_call(300, iccid="B"))
    totals = yield repo.talk_by_iccid()
    assert totals == {"A": 120.0, "B": 0.0}
