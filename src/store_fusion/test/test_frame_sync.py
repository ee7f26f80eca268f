"""The tracker node's frame sets: one step per instant of all live cameras, in stamp order,
however the cameras' messages interleave; a camera that misses a set delays it at most
max_wait_s; gate scans go in before the first step at or after their stamp."""
import random

from store_fusion.frame_sync import FrameSync, NS

CAMS = ('c1', 'c2', 'c3')
MS = 1_000_000


def _stamp(k):
    return 100 * NS + k * 200 * MS


def test_interleaved_cameras_give_one_complete_step_per_frame():
    """Each camera's messages come in order (one publisher, reliable); how the cameras
    interleave (here: a random merge) does not change the steps."""
    rng = random.Random(4)
    queues = {c: [(c, _stamp(k)) for k in range(20)] for c in CAMS}
    sync = FrameSync(CAMS, slop_s=0.05, max_wait_s=0.3)
    steps, now = [], 0
    while any(queues.values()):
        c, s = queues[rng.choice([c for c in CAMS if queues[c]])].pop(0)
        now += MS
        sync.add(c, s, f'{c}@{s}', now)
        steps += sync.ready(now)
    assert [s for s, _, _ in steps] == [_stamp(k) for k in range(20)]
    for s, dets, _ in steps:
        assert dets == {c: f'{c}@{s}' for c in CAMS}


def test_in_order_arrivals_step_every_frame_with_every_camera():
    sync = FrameSync(CAMS)
    steps, now = [], 0
    for k in range(10):
        for c in CAMS:
            now += MS
            sync.add(c, _stamp(k), k, now)
            steps += sync.ready(now)
    assert [s for s, _, _ in steps] == [_stamp(k) for k in range(10)]
    assert all(set(d) == set(CAMS) for _, d, _ in steps)
    assert sync.stats.frames_used == 30 and sync.stats.incomplete_steps == 0


def test_a_camera_that_misses_a_frame_delays_it_by_max_wait_then_drops_out():
    sync = FrameSync(CAMS, max_wait_s=0.3, dropout_s=1.0)
    now = 0
    for c in CAMS:
        sync.add(c, _stamp(0), 0, now)
    assert [s for s, _, _ in sync.ready(now)] == [_stamp(0)]
    sync.add('c1', _stamp(1), 1, now + 10 * MS)
    sync.add('c2', _stamp(1), 1, now + 10 * MS)
    assert sync.ready(now + 100 * MS) == []              # c3 may still deliver it
    steps = sync.ready(now + 320 * MS)
    assert [(s, sorted(d)) for s, d, _ in steps] == [(_stamp(1), ['c1', 'c2'])]
    assert sync.stats.incomplete_steps == 1
    # c3 silent for longer than dropout_s: no longer waited for
    t = now + 1500 * MS
    sync.add('c1', _stamp(2), 2, t)
    sync.add('c2', _stamp(2), 2, t)
    assert [s for s, _, _ in sync.ready(t)] == [_stamp(2)]


def test_a_camera_that_skipped_the_instant_is_not_waited_for():
    sync = FrameSync(CAMS)
    for c in ('c1', 'c2'):
        sync.add(c, _stamp(0), 0, 0)
    sync.add('c3', _stamp(1), 1, 0)          # c3's detector skipped frame 0
    steps = sync.ready(MS)
    assert [(s, sorted(d)) for s, d, _ in steps] == [(_stamp(0), ['c1', 'c2'])]


def test_late_frames_are_counted_not_used():
    sync = FrameSync(('c1',))
    sync.add('c1', _stamp(5), 5, 0)
    assert len(sync.ready(0)) == 1
    assert not sync.add('c1', _stamp(4), 4, MS)
    assert sync.stats.frames_late == 1 and sync.ready(MS) == []


def test_gate_scans_go_in_before_the_first_step_at_or_after_their_stamp():
    sync = FrameSync(('c1',))
    sync.add_gate(_stamp(2) + 1, 'enter', 'bob')
    sync.add_gate(_stamp(1), 'enter', 'alice')
    out = []
    for k in range(4):
        sync.add('c1', _stamp(k), k, k * MS)
        out += [(s, g) for s, _, g in sync.ready(k * MS)]
    assert out == [(_stamp(0), []), (_stamp(1), [(_stamp(1), 'enter', 'alice')]),
                   (_stamp(2), []), (_stamp(3), [(_stamp(2) + 1, 'enter', 'bob')])]
