"""Behaviour of the per-packet classes ported to Cython that no end-to-end test pins down.

ReceptionStats is otherwise only seen through RtpStream figures; these fix its
RFC 3550 arithmetic (A.1 sequence checks, A.3 fraction lost, A.8 jitter).
"""

from goip_tw.media.rtcp import ReceptionStats


def fed(seqs, clock_rate=8000):
    st = ReceptionStats(clock_rate)
    accepted = [st.update_seq(s) for s in seqs]
    return st, accepted


def test_first_packet_is_trusted_and_counted():
    st = ReceptionStats()
    assert (st.started, st.received, st.bad_seq, st.lost) == (False, 0, 65537, 1)
    assert st.update_seq(500) is True
    assert (st.started, st.base_seq, st.max_seq, st.received, st.expected) == (True, 500, 500, 1, 1)


def test_duplicate_and_late_packets():
    st, accepted = fed([10, 11, 12, 12, 13, 14, 11])
    assert all(accepted)
    assert st.duplicates_or_late == 2
    assert st.max_seq == 14 and st.expected == 5
    # a late packet is counted as received (A.1), so it offsets an earlier loss
    assert st.received == 6 and st.lost == -1


def test_fraction_lost_is_taken_per_interval():
    st, _ = fed([s for s in range(10) if s not in (3, 4)])
    assert st.lost == 2
    assert st.take_fraction_lost() == (2 << 8) // 10
    assert (st.expected_prior, st.received_prior) == (10, 8)
    assert st.take_fraction_lost() == 0
    for s in range(10, 20):
        st.update_seq(s)
    assert st.take_fraction_lost() == 0


def test_unconfirmed_jump_is_refused_and_confirmed_jump_restarts():
    st, accepted = fed([100, 101, 30000, 102])
    assert accepted == [True, True, False, True]
    assert st.bad_seq == 30001 and st.max_seq == 102 and st.received == 3
    st, accepted = fed([100, 101, 30000, 30001, 30002])
    assert accepted == [True, True, False, True, True]
    assert (st.base_seq, st.max_seq, st.received, st.cycles) == (30001, 30002, 2, 0)


def test_jitter_follows_rfc3550_a8():
    st = ReceptionStats(8000)
    # transits 0, 90, 55 timestamp units: |D| = 90 then 35
    st.update_jitter(0.0, 0)
    assert st.jitter == 0.0
    st.update_jitter(0.03125, 160)
    assert st.jitter == 90 / 16
    st.update_jitter(0.046875, 320)
    assert st.jitter == 90 / 16 + (35 - 90 / 16) / 16
    assert st.jitter_ms == st.jitter * 1000.0 / 8000


def test_jitter_across_the_32_bit_timestamp_wrap():
    st = ReceptionStats(8000)
    st.update_jitter(0.0, (1 << 32) - 80)
    st.update_jitter(0.02, 80)
    assert st.jitter == 0.0
    st.init(7)
    assert st.jitter == 0.0 and st.base_seq == 7 and st.received == 0
