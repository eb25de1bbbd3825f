"""Adaptive jitter buffer: reorders, de-duplicates and paces received RTP payloads.

The buffer holds packets by extended sequence number (16-bit wrap handled)
and hands out one packet per :meth:`JitterBuffer.pop`.  Its target depth
follows the RFC 3550 interarrival jitter estimate (about three times the
jitter plus one packet), bounded by ``min_delay_ms``/``max_delay_ms``:

* it waits (``"empty"``) until the target depth is buffered, at call start and
  after every underrun, so delay grows when the network gets worse;
* a missing packet whose playout time has come while later ones wait is
  declared ``"lost"`` (the caller conceals it); reordering within the buffer's
  delay is repaired;
* when the depth stays above target for a second it drops one packet, and it
  never holds more than ``max_delay_ms``, so delay shrinks again.

The buffer runs for every packet of every call, so it is a Cython class
(``_jitter.pyx``); Cython code cimports it through ``_jitter.pxd`` to call
``put``/``pop_kind``/``take_payload`` without Python overhead.
"""

from goip_tw.media._jitter import AUDIO, EMPTY, LOST, JitterBuffer

__all__ = ["AUDIO", "EMPTY", "LOST", "JitterBuffer"]
