"""Fixtures shared by the SMS queue tests."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.sms.fakes import make_store


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A started SMS store in ``tmp_path`` (modules with their own ``store`` keep it)."""
    s = make_store(tmp_path / "q.sqlite", reactor, monkeypatch)
    yield s
    pytest_twisted.blockon(s.stop())
