"""The serving loop shared by the detector node and the live benchmark: newest frame per
camera, the schedule, drops counted, batches, and the detector's boxes back to the scheduler.
A fake detector stands in for the models (the real one: test_detector_node_graph.py)."""
from store_perception.detection import Det
from store_perception.scheduler import FULL, ScheduleParams, Scheduler, SHOPPERS, SKIP
from store_perception.serving import DetectionService

NS = 1_000_000_000
PX = {'cam1': {'p1': (100.0, 100.0)}, 'cam2': {'p1': (300.0, 300.0)}}


class FakeTwoStage:
    two_stage = True

    def __init__(self):
        self.calls = []

    def detect_batch(self, images, crop_select=None, first_stage_hands=None, shoppers=None):
        given = list(shoppers) if shoppers is not None else [None] * len(images)
        # the images whose full-frame stage ran (no earlier shoppers given)
        self.full_frame = [img for img, g in zip(images, given) if g is None]
        self.calls.append((list(images), crop_select))
        if first_stage_hands is not None:   # the full-frame model's hand over cam1's plate
            first_stage_hands[:] = [[Det(1, 'hand', 0.5, 95, 95, 105, 105)]
                                    if i == 'a1' and g is None else []
                                    for i, g in zip(images, given)]
        out = []
        for k, (img, sel) in enumerate(zip(images, crop_select)):
            # the full-frame stage's shopper is named after its image
            shopper = (given[k][0] if given[k] else
                       Det(0, 'shopper', 0.9, 80, 50, 140, 200, sku=img))
            if shoppers is not None and shoppers[k] is None:
                shoppers[k] = [shopper]
            dets = [shopper]
            if sel is not None and sel(shopper):
                dets.append(Det(1, 'hand', 0.8, 97, 97, 103, 103))
            out.append((dets, 5.0))
        return out


class FakeStreams:
    def __init__(self):
        self.streams = []

    def detect(self, image, stream=None):
        self.streams.append(stream)
        return [], 1.0


def take_done(s, timeout_s: float = 0.0) -> list:
    """One worker round: take a batch and report every frame done (payloads returned)."""
    batch = s.take(timeout_s=timeout_s)
    for p in batch:
        s.done(p, 1.0)
    return [p.payload for p in batch]


def test_newest_frame_wins_drops_are_counted_and_skips_are_not_drops():
    s = DetectionService(FakeTwoStage(), ['cam1', 'cam2'],
                         Scheduler(['cam1', 'cam2'], ScheduleParams(shopper_rate_hz=5.0), PX))
    assert s.offer('cam1', 10 * NS, 'a0') == SHOPPERS
    assert s.offer('cam1', int(10.1 * NS), 'a1') == SKIP          # same 0.2 s slot
    assert s.offer('cam1', int(10.2 * NS), 'a2') == SHOPPERS      # replaces a0: dropped
    assert s.offer('cam2', int(10.2 * NS), 'b2') == SHOPPERS
    batch = s.take(timeout_s=0.0)
    assert [(p.camera_id, p.payload) for p in batch] == [('cam1', 'a2'), ('cam2', 'b2')]
    assert s.take(timeout_s=0.0) == []
    s.detect(batch, [p.payload for p in batch])
    for p in batch:
        s.done(p, 42.0)
    n1 = s.stats['cam1'].total.n
    assert (n1['frames_in'], n1['skipped_by_schedule'], n1['dropped'],
            n1['processed_shoppers']) == (3, 1, 1, 1)
    assert s.report()['cam2'][2]['window_latency_p95_ms'] == 42.0


def test_a_first_stage_hand_over_a_plate_turns_the_cameras_to_all_stages():
    det = FakeTwoStage()
    s = DetectionService(det, ['cam1', 'cam2'],
                         Scheduler(['cam1', 'cam2'], ScheduleParams(reach_px=5.0), PX))
    s.offer('cam1', 20 * NS, 'a1')
    batch = s.take(timeout_s=0.0)
    res = s.detect(batch, ['a1'])
    s.done(batch[0], 1.0)
    assert det.calls[-1][1] == [None] and [d.class_name for d in res[0][0]] == ['shopper']
    # the full-frame hand near p1 made p1 active: both cameras (they see p1) go to all stages
    assert s.offer('cam2', int(20.1 * NS), 'b1') == FULL
    assert s.offer('cam1', int(20.1 * NS), 'a2') == FULL
    batch = s.take(timeout_s=0.0)
    res = s.detect(batch, [p.payload for p in batch])
    # crops only around the shopper covering the active plate's reach point (cam1's)
    names = [[d.class_name for d in dets] for dets, _ in res]
    assert names == [['shopper', 'hand'], ['shopper']]
    assert s.stats['cam2'].total.n['active_in'] == 1


def test_stream_detectors_get_one_call_per_camera():
    det = FakeStreams()
    s = DetectionService(det, ['cam1', 'cam2'], Scheduler(['cam1', 'cam2']), streams=True)
    s.offer('cam1', NS, 'x')
    s.offer('cam2', NS, 'y')
    batch = s.take(timeout_s=0.0)
    assert s.detect(batch, ['x', 'y']) == [([], 1.0), ([], 1.0)]
    assert det.streams == ['cam1', 'cam2']


def test_full_frames_go_first_and_a_shoppers_frame_waits_one_round_at_most():
    cams = ['cam1', 'cam3']
    px = {'cam1': {'p1': (100.0, 100.0)}, 'cam3': {}}      # cam3 does not see p1
    s = DetectionService(FakeTwoStage(), cams, Scheduler(cams, ScheduleParams(), px))
    assert s.on_weight('p1', 29 * NS, 500.0) and s.on_weight('p1', 30 * NS, 400.0)  # a take
    assert s.offer('cam3', 30 * NS, 'c0') == SHOPPERS
    assert s.offer('cam1', 30 * NS, 'a0') == FULL
    assert take_done(s) == ['a0']                                    # c0 waits a round
    assert s.offer('cam1', int(30.1 * NS), 'a1') == FULL
    assert take_done(s) == ['a1', 'c0']                              # not twice
    assert s.take(timeout_s=0.0) == []
    assert s.offer('cam3', int(30.2 * NS), 'c1') == SHOPPERS        # alone: taken at once
    assert take_done(s) == ['c1']
    assert s.stats['cam3'].total.n['dropped'] == 0


def test_the_benchmark_cost_replay_detects_every_frame_the_schedule_wants():
    # the harness (store_bench, downstream of store_perception: imported here, not declared)
    import store_bench.bench_live_detector as bench
    cams = ['cam1', 'cam3']
    px = {'cam1': {'p1': (100.0, 100.0)}, 'cam3': {}}
    s = DetectionService(FakeTwoStage(), cams, Scheduler(cams, ScheduleParams(), px))
    frames = {c: [(k / 10, f'{c}-{k}', []) for k in range(20)] for c in cams}
    weights = ([0.0, 0.5, 1.0, 1.5], {'p1': [500.0, 500.0, 400.0, 400.0]})  # a take at 1 s
    cost, video_s = bench.replay_cost(s, frames, weights, 10.0)
    assert video_s == 2.0
    n = {c: s.stats[c].total.n for c in cams}
    # cam1: shoppers at 5 Hz up to the take (0.0 .. 1.0 s), then all stages at 10 Hz
    # (1.1 .. 1.9 s); cam3 does not see p1: shoppers only at 5 Hz throughout
    assert (n['cam1']['processed_shoppers'], n['cam1']['processed_full']) == (6, 9)
    assert n['cam3']['processed_full'] == 0
    assert n['cam3']['processed_shoppers'] == 10
    for c in cams:
        assert n[c]['dropped'] == 0
        assert n[c]['frames_in'] == 20 == (n[c]['processed_full'] + n[c]['processed_shoppers']
                                           + n[c]['skipped_by_schedule'])
    assert cost['full'][0] == sum(n[c]['processed_full'] for c in cams)
    assert cost['shoppers'][0] == sum(n[c]['processed_shoppers'] for c in cams)


def test_max_batch_takes_full_and_oldest_first_and_keeps_the_rest_queued():
    import pytest
    cams = ['cam1', 'cam2', 'cam3']
    sched = Scheduler(cams, ScheduleParams(shopper_rate_hz=5.0, active_rate_hz=10.0),
                      {'cam1': {}, 'cam2': {'p1': (300.0, 300.0)}, 'cam3': {}})
    s = DetectionService(FakeTwoStage(), cams, sched, max_batch=1)
    sched.on_weight('p1', 9 * NS, 100.0)
    sched.on_weight('p1', 10 * NS, 500.0)                       # cam2's plate turns active
    assert s.offer('cam1', int(10.00 * NS), 'a') == SHOPPERS
    assert s.offer('cam3', int(10.01 * NS), 'c') == SHOPPERS
    assert s.offer('cam2', int(10.05 * NS), 'b') == FULL
    assert [p.payload for p in s.take(timeout_s=0.0)] == ['b']     # the full frame first
    assert [p.payload for p in s.take(timeout_s=0.0)] == ['a']     # then the oldest
    assert [p.payload for p in s.take(timeout_s=0.0)] == ['c']
    assert s.take(timeout_s=0.0) == []
    n = {c: s.stats[c].total.n['dropped'] for c in cams}
    assert n == {'cam1': 0, 'cam2': 0, 'cam3': 0}                # waiting is not dropping
    every = DetectionService(FakeTwoStage(), cams, Scheduler(cams, ScheduleParams()))
    for k, c in enumerate(cams):
        every.offer(c, 20 * NS + k, c)
    assert [p.payload for p in every.take(timeout_s=0.0)] == cams  # 0: all in one batch
    with pytest.raises(ValueError, match='max_batch'):
        DetectionService(FakeTwoStage(), cams, sched, max_batch=-1)


def test_a_camera_in_flight_is_not_taken_again_until_done_or_failed():
    # several workers: a camera's next frame waits for its previous one, so its detections
    # come out in stamp order; other cameras go to the other worker meanwhile
    import threading
    import time
    cams = ['cam1', 'cam2']
    s = DetectionService(FakeTwoStage(), cams,
                         Scheduler(cams, ScheduleParams(shopper_rate_hz=10.0), {}), max_batch=1)
    s.offer('cam1', 10 * NS, 'a0')
    first = s.take(timeout_s=0.0)
    assert [p.payload for p in first] == ['a0']
    s.offer('cam1', int(10.1 * NS), 'a1')
    s.offer('cam2', int(10.1 * NS), 'b1')
    assert [p.payload for p in s.take(timeout_s=0.0)] == ['b1']     # cam1 is in flight
    assert s.take(timeout_s=0.0) == []
    got = []
    waiter = threading.Thread(target=lambda: got.extend(s.take(timeout_s=5.0)))
    waiter.start()
    time.sleep(0.1)
    assert not got                      # a worker waits while only cam1's frame is queued
    s.failed(first[0])                  # ... and gets it once cam1's previous frame is out
    waiter.join(timeout=5.0)
    assert [p.payload for p in got] == ['a1']
    assert s.stats['cam1'].total.n['failed'] == 1


def test_recorded_frames_give_every_frame_one_outcome():
    cams = ['cam1', 'cam2']
    s = DetectionService(FakeTwoStage(), cams,
                         Scheduler(cams, ScheduleParams(shopper_rate_hz=5.0), PX),
                         record_frames=True)
    assert s.offer('cam1', 10 * NS, 'a0') == SHOPPERS
    assert s.offer('cam1', int(10.1 * NS), 'a1') == SKIP      # same 0.2 s slot
    assert s.offer('cam1', int(10.2 * NS), 'a2') == SHOPPERS  # a0 dropped
    assert s.offer('cam2', int(10.2 * NS), 'b2') == SHOPPERS
    batch = s.take(timeout_s=0.0)
    s.done(batch[0], 1.0)
    s.failed(batch[1])
    s.offer('cam2', int(10.4 * NS), 'b4')                 # still queued at the end
    got = sorted(s.frame_outcomes())
    assert got == [('cam1', 10 * NS, 'dropped'), ('cam1', int(10.1 * NS), 'skipped'),
                   ('cam1', int(10.2 * NS), 'shoppers'), ('cam2', int(10.2 * NS), 'failed'),
                   ('cam2', int(10.4 * NS), 'unprocessed')]
    assert DetectionService(FakeTwoStage(), cams, Scheduler(cams)).frame_outcomes() == []


def test_active_frames_between_full_frame_passes_crop_around_the_last_proposals():
    det = FakeTwoStage()
    cams = ['cam1']          # no plate geometry: always active, all stages at 10 Hz
    s = DetectionService(det, cams, Scheduler(cams, ScheduleParams(
        active_rate_hz=10.0, active_shopper_rate_hz=5.0), {}))

    def one(t, name):
        assert s.offer('cam1', int(t * NS), name) == FULL
        batch = s.take(timeout_s=0.0)
        res = s.detect(batch, [p.payload for p in batch])
        s.done(batch[0], 1.0)
        stamps.append(batch[0].shoppers_stamp_ns)
        return batch[0].reused, det.full_frame, [d.sku for d in res[0][0]
                                                 if d.class_name == 'shopper']

    stamps = []     # the image stamp the frame's shopper boxes were found on
    assert one(10.0, 'a0') == (False, ['a0'], ['a0'])   # first of its 0.2 s slot: full frame
    assert one(10.1, 'a1') == (True, [], ['a0'])        # a0's shoppers, cropped on a1
    assert stamps == [10 * NS, 10 * NS]                 # ... as old as a0
    assert one(10.2, 'a2') == (False, ['a2'], ['a2'])   # a new slot: its own pass
    # a pass's frame that was dropped leaves its slot without one: the next frame runs it
    s.offer('cam1', int(10.4 * NS), 'a4')
    assert one(10.5, 'a5') == (False, ['a5'], ['a5'])
    n = s.stats['cam1'].total.n
    assert (n['processed_full'], n['full_reused_shoppers'], n['dropped']) == (4, 1, 1)
    # shoppers-only frames (inactive cameras) always run the full-frame stage
    q = DetectionService(det, ['cam1', 'cam2'], Scheduler(['cam1', 'cam2'], ScheduleParams(
        shopper_rate_hz=10.0, active_shopper_rate_hz=5.0), PX))
    for k, t in enumerate((30.0, 30.1)):
        assert q.offer('cam1', int(t * NS), f'q{k}') == SHOPPERS
        batch = q.take(timeout_s=0.0)
        q.detect(batch, [p.payload for p in batch])
        q.done(batch[0], 1.0)
        assert det.full_frame == [f'q{k}'] and not batch[0].reused
