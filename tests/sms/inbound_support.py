"""Shared pieces of the received-SMS tests: a real SQLite store on a tmp dir,
recording fakes with the real signatures."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface import implementer

from goip_tw.sms.inbound import IReceivedSmsObserver, ReceivedPart
from goip_tw.store.sqlite import SqliteStore


@pytest_twisted.async_yield_fixture
async def store(tmp_path):
    s = await open_store(tmp_path / "gw.sqlite")
    yield s
    await s.stop()


@defer.inlineCallbacks
def open_store(path):
    """A started SqliteStore on ``path`` (a new file is fine: see
    tests/store/test_store.py::test_fresh_file_starts_with_both_threads_every_time)."""
    s = SqliteStore(str(path), reactor=reactor)
    yield s.start()
    return s


@pytest.fixture
def net():
    """A simulated mobile network (goip_tw.simulator) on the real reactor."""
    from tests.modem.simhelp import make_network

    n = make_network()
    yield n
    n.stop()


@implementer(IReceivedSmsObserver)
class Recorder:
    def __init__(self):
        self.messages = []

    def sms_received(self, msg):
        self.messages.append(msg)


def part(text="hello", sender="+8613670128297", scts="26/11/26,10:00:00+32", line=1,
         imsi="460001234567890", **kw):
    return ReceivedPart(line=line, sender=sender, text=text, scts=scts, imsi=imsi, **kw)


def flush(store):
    """Fires after every write queued before it has been delivered."""
    return store.write(lambda conn: None)


def history(store):
    return store.query("SELECT * FROM sms_history ORDER BY id")

