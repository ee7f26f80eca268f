"""Source watermarks: the frontier a consumer may decide up to (plain pytest, no ROS)."""
from __future__ import annotations

import pytest

from store_common.watermarks import (BLOCKED, MISSING_EVENT, OK, SILENT, WAITING,
                                     WatermarkTracker)

S = 1_000_000_000


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


@pytest.fixture
def env():
    held: set[str] = set()
    clock = Clock()
    tr = WatermarkTracker(['gate/in', 'shelf/g1'], 5.0, held.__contains__, clock)
    return tr, held, clock


def test_no_source_means_no_bound():
    assert WatermarkTracker([], 5.0, lambda e: True).frontier_ns() is None


def test_blocked_until_every_source_has_promised(env):
    tr, held, clock = env
    assert tr.frontier_ns() == BLOCKED
    assert tr.update('gate/in', 'r1', 10 * S, '') is None
    assert tr.frontier_ns() == BLOCKED                     # shelf/g1 has said nothing yet
    tr.update('shelf/g1', 'r1', 12 * S, '')
    assert tr.frontier_ns() == 10 * S                      # the slowest source rules


def test_a_watermark_counts_only_once_its_last_event_is_held(env):
    tr, held, clock = env
    tr.update('gate/in', 'r1', 10 * S, 'gate/in@9')
    tr.update('shelf/g1', 'r1', 12 * S, '')
    assert tr.frontier_ns() == BLOCKED and tr.state('gate/in') == WAITING
    held.add('gate/in@9')                                  # the event arrives after its promise
    assert tr.frontier_ns() == 10 * S
    tr.update('gate/in', 'r1', 20 * S, 'gate/in@19')       # newer promise, event not yet here
    assert tr.frontier_ns() == 10 * S                      # the last verified promise holds
    held.add('gate/in@19')
    assert tr.frontier_ns() == 12 * S


def test_a_silent_source_is_no_longer_waited_for_and_is_reported(env):
    tr, held, clock = env
    tr.update('gate/in', 'r1', 10 * S, '')
    tr.update('shelf/g1', 'r1', 12 * S, '')
    assert tr.changes() == []
    clock.t = 4 * S
    tr.update('shelf/g1', 'r1', 16 * S, '')
    clock.t = 6 * S                                        # gate/in silent for 6 s > 5 s
    assert tr.state('gate/in') == SILENT and tr.frontier_ns() == 16 * S
    (line,) = tr.changes()
    assert 'gate/in' in line and 'silent' in line
    tr.update('gate/in', 'r2', 30 * S, '')                 # restarted: waited for again
    assert tr.state('gate/in') == OK and tr.frontier_ns() == 16 * S
    assert 'back' in tr.changes()[0]


def test_a_source_never_heard_is_waited_for_only_timeout_s(env):
    tr, held, clock = env
    clock.t = 4 * S
    tr.update('gate/in', 'r1', 10 * S, '')
    assert tr.state('shelf/g1') == WAITING and tr.frontier_ns() == BLOCKED
    clock.t = 5 * S
    assert tr.state('shelf/g1') == SILENT and tr.frontier_ns() == 10 * S


def test_an_event_that_never_arrives_stops_the_wait_after_timeout_s(env):
    tr, held, clock = env
    tr.update('gate/in', 'r1', 10 * S, 'lost')
    tr.update('shelf/g1', 'r1', 12 * S, '')
    clock.t = 3 * S
    tr.update('gate/in', 'r1', 13 * S, 'lost')             # still talking, still missing
    tr.update('shelf/g1', 'r1', 14 * S, '')
    assert tr.frontier_ns() == BLOCKED
    clock.t = 5 * S
    tr.update('gate/in', 'r1', 15 * S, 'lost')
    tr.update('shelf/g1', 'r1', 16 * S, '')
    assert tr.state('gate/in') == MISSING_EVENT and tr.frontier_ns() == 16 * S
    assert "'lost'" in tr.changes()[0]


def test_bad_watermarks_are_refused_with_a_reason(env):
    tr, held, clock = env
    tr.update('gate/in', 'r1', 10 * S, '')
    assert 'went back' in tr.update('gate/in', 'r1', 9 * S, '')
    assert tr.update('gate/in', 'r2', 9 * S, '') is None   # a new run may start lower
    assert 'source_id' in tr.update('', 'r1', 9 * S, '')
    assert 'not a source' in tr.update('gate/other', 'r1', 9 * S, '')
    assert tr.update('gate/other', 'r1', 9 * S, '') is None    # said once
    assert 'stamp' in tr.update('shelf/g1', 'r1', -1, '')
    assert tr.rejected == 3
    with pytest.raises(ValueError):
        WatermarkTracker(['a'], 0.0, lambda e: True)
