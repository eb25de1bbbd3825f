"""Scripted packet traces through the jitter buffer: (arrival tick, seq) pairs."""

from goip_tw.media.jitterbuffer import AUDIO, EMPTY, LOST, JitterBuffer


def run(trace, ticks, **kw):
    """Feed packets at their arrival tick (20 ms each) and pop once per tick."""
    jb = JitterBuffer(**kw)
    by_tick = {}
    for tick, seq in trace:
        by_tick.setdefault(tick, []).append(seq)
    out = []
    for t in range(ticks):
        for seq in by_tick.get(t, []):
            jb.put(seq % 65536, (seq * 160) % (1 << 32), seq.to_bytes(4, "big"), t * 0.02)
        kind, payload = jb.pop()
        out.append(int.from_bytes(payload, "big") if kind == AUDIO else kind)
    return jb, out


def played(out):
    return [x for x in out if isinstance(x, int)]


def test_in_order_plays_everything_after_prefetch():
    jb, out = run([(i, i) for i in range(50)], 55, min_delay_ms=40)
    assert out[0] == EMPTY
    assert played(out) == list(range(50))
    assert jb.lost == 0


def test_reorder_is_repaired():
    trace = [(0, 0), (1, 2), (1, 1), (2, 3), (3, 5), (4, 4), (5, 6), (6, 7)]
    jb, out = run(trace, 12, min_delay_ms=40)
    assert played(out) == list(range(8))
    assert jb.lost == 0


def test_duplicates_dropped_and_counted():
    trace = [(i, i) for i in range(10)] + [(i + 1, i) for i in range(0, 10, 2)]
    jb, out = run(trace, 14, min_delay_ms=40)
    assert played(out) == list(range(10))
    assert jb.duplicates + jb.late == 5


def test_loss_is_reported_once_per_missing_packet():
    trace = [(i, i) for i in range(30) if i not in (5, 6, 20)]
    jb, out = run(trace, 35, min_delay_ms=40)
    assert jb.lost == 3
    assert played(out) == [i for i in range(30) if i not in (5, 6, 20)]
    # a single loss with packets waiting behind it is concealed in its own slot
    i20 = out.index(19) + 1
    assert out[i20:i20 + 2] == [LOST, 21]


def test_isolated_losses_keep_timing_with_deeper_buffer():
    trace = [(i, i) for i in range(40) if i not in (10, 25)]
    jb, out = run(trace, 45, min_delay_ms=60)
    i10 = out.index(9) + 1
    assert out[i10:i10 + 2] == [LOST, 11]
    assert jb.lost == 2
    middle = out[out.index(0):out.index(39)]
    assert EMPTY not in middle


def test_late_packet_after_its_slot_is_dropped():
    trace = [(i, i) for i in range(20) if i != 8] + [(15, 8)]
    jb, out = run(trace, 25, min_delay_ms=40)
    assert 8 not in played(out)
    assert jb.late == 1 and jb.lost == 1


def test_sequence_wrap():
    trace = [(i, 65530 + i) for i in range(20)]
    jb, out = run(trace, 25)
    assert played(out) == [65530 + i for i in range(20)]


def test_jitter_grows_the_target_and_delay_is_bounded():
    # bursts: packets arrive in groups of 5 every 100 ms
    trace = [((i // 5) * 5 + 4, i) for i in range(200)]
    jb, out = run(trace, 220, min_delay_ms=20, max_delay_ms=200)
    assert jb.target_packets > 2
    assert jb.delay_ms <= 200
    assert len(played(out)) >= 190


def test_overflow_drops_oldest():
    trace = [(0, i) for i in range(30)]
    jb = JitterBuffer(max_delay_ms=100)
    for _, seq in trace:
        jb.put(seq, seq * 160, b"x", 0.0)
    assert jb.depth == 5 and jb.overflow_dropped == 25


def test_restart_with_new_sequence_resyncs():
    trace = [(i, i) for i in range(10)] + [(10 + i, 30000 + i) for i in range(10)]
    jb, out = run(trace, 25, min_delay_ms=40)
    assert played(out)[-1] == 30009
    assert jb.resyncs == 1


def test_underrun_refills_before_playing():
    trace = [(i, i) for i in range(5)] + [(i + 10, i) for i in range(5, 10)]
    jb, out = run(trace, 25, min_delay_ms=40)
    assert played(out) == list(range(10))
    assert jb.underruns >= 1
    assert "jb_delay_ms" in jb.figures()


def test_reorder_across_the_16_bit_wrap():
    trace = [(0, 65534), (1, 0), (1, 65535), (2, 1), (3, 2), (4, 3), (5, 4)]
    jb, out = run(trace, 9, min_delay_ms=40)
    assert played(out) == [65534, 65535, 0, 1, 2, 3, 4]
    assert jb.lost == jb.late == 0


def test_backward_restart_resyncs():
    # 60000 is far *behind* the expected 10 once extended: the sender restarted
    trace = [(i, i) for i in range(10)] + [(10 + i, 60000 + i) for i in range(10)]
    jb, out = run(trace, 25, min_delay_ms=40)
    assert played(out) == list(range(9)) + [60000 + i for i in range(10)]
    assert jb.resyncs == 1 and jb.late == 0


def test_depth_above_target_shrinks_without_counting_loss():
    # a burst of six at start, then one per tick: depth stays two above target
    trace = [(0, i) for i in range(6)] + [(i - 5, i) for i in range(6, 60)]
    jb, out = run(trace, 60, shrink_after=5)
    assert jb.shrunk == 3 and jb.lost == 0
    assert played(out)[:10] == [0, 1, 2, 3, 5, 6, 7, 8, 9, 11]
    assert jb.figures()["jb_shrunk"] == 3


def test_counters_and_bounds_are_plain_attributes():
    jb = JitterBuffer(packet_ms=30, min_delay_ms=50, max_delay_ms=40)
    assert jb.max_delay_ms == 80 and jb.max_packets == 2 and jb.target_packets == 2
    assert (jb.depth, jb.delay_ms, jb.played, jb.jitter) == (0, 0, 0, 0.0)
    assert jb.pop() == (EMPTY, None)
    jb.put(1, 160, b"a", 0.0)
    jb.put(2, 320, b"b", 0.02)
    assert jb.pop() == (AUDIO, b"a") and jb.played == 1 and jb.delay_ms == 30
