"""Shared fixtures: the real-peer harness (Kamailio, baresip) of tests/peers."""

from tests.peers.harness import (baresip_factory, kamailio_factory,  # noqa: F401
                                 peer_dir)

