"""Fixtures shared by the modem tests that run on simulator ptys."""

import pytest

from .simhelp import make_network


@pytest.fixture
def net():
    """A simulated network with short boot and registration delays."""
    n = make_network()
    yield n
    n.stop()
