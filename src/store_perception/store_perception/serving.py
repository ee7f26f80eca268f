"""The detector serving several cameras: newest frame per camera, the schedule, one batch per
round, every frame accounted for. The detector node and ``bench_live_detector`` run
this same object.

* :meth:`DetectionService.offer` (image callbacks): counts the frame in, asks the scheduler
  (``full`` / ``shoppers`` / ``skip``: :mod:`store_perception.scheduler`); a frame due for
  detection replaces the camera's queued one, which is counted as *dropped*.
* :meth:`DetectionService.take` (the worker thread): the queued frames, one per camera; while
  a ``full`` frame (a camera that sees an active plate) waits, ``shoppers`` frames are left
  for the next round, once each (``deferred``): under load the time goes to the frames where
  shoppers reach, and a tracking-rate frame still waits at most one round.
* ``max_batch`` (0 = every queued frame): at most this many frames a round. A batch's frames
  all wait for the whole batch; one frame a round lets the oldest frame's detections out
  after its own stages only (lower latency for the same CPU on one core).
* :meth:`DetectionService.detect`: the batch in one ``Detector.detect_batch`` call (one graph
  call per stage for all cameras; crops only around shoppers near active plates in ``full``
  frames, none in ``shoppers`` frames; a ``full`` frame that ``Scheduler.shoppers_reusable``
  allows crops around its camera's last shopper proposals instead of running the full-frame
  stage), then the boxes go back to the scheduler (reaches; with
  the full-frame model's own hand boxes, so a shoppers-only frame can see a reach begin).
* :meth:`DetectionService.done` / ``failed``: latency stamp -> detections, per camera
  (:class:`store_perception.frame_stats.FrameStats`, reported on /diagnostics by the node).

Never imports rclpy.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from store_perception.frame_stats import FrameStats, run_summary
from store_perception.scheduler import FULL, Scheduler, SKIP


@dataclass
class Pending:
    camera_id: str
    stamp_ns: int          # image stamp (sensor time) [ns]
    mode: str              # scheduler.FULL or scheduler.SHOPPERS
    active: bool           # the camera saw plate activity at this stamp
    payload: Any           # the image message (node) or array (benchmark)
    deferred: bool = False  # left for the next round once already (full frames went first)
    reused: bool = False    # detected on the camera's earlier shopper proposals (no full frame)
    shoppers_stamp_ns: int = 0  # the stamp of the image those proposals were found on


class DetectionService:
    """Frame queue, schedule and accounting around one detector (module docstring)."""

    def __init__(self, detector, cameras, scheduler: Scheduler,
                 warn_drop_share: float = 0.05, streams: bool = False, max_batch: int = 0,
                 record_frames: bool = False):
        if int(max_batch) != max_batch or max_batch < 0:
            raise ValueError(f'max_batch must be an integer >= 0, got {max_batch}')
        self.max_batch = int(max_batch)
        self.detector = detector
        self.cameras = list(cameras)
        self.scheduler = scheduler
        self.streams = streams          # pose backend: one detect call per camera stream
        self.stats = {c: FrameStats(c, warn_drop_share) for c in self.cameras}
        self.cv = threading.Condition()
        self.pending: dict[str, Pending] = {}
        self.busy: set[str] = set()     # cameras with a frame taken and not yet done/failed
        # camera -> (stamp, shopper proposals) of its last full-frame pass (two stages), for
        # the full frames that Scheduler.shoppers_reusable lets crop around them
        self.proposals: dict[str, tuple[int, list]] = {}
        # record_frames: every frame's outcome (camera, stamp_ns, outcome) for the benchmarks
        # (grows with the run: bounded runs only; run_store --mode sim)
        self.frame_log: list[tuple[str, int, str]] | None = [] if record_frames else None

    # --- inputs (any thread) --------------------------------------------------------------------
    def offer(self, camera_id: str, stamp_ns: int, payload) -> str:
        """A new frame; returns the scheduler's decision for it."""
        with self.cv:
            stats = self.stats[camera_id]
            active = self.scheduler.camera_active(camera_id, stamp_ns)
            stats.frame_in(active)
            mode = self.scheduler.decide(camera_id, stamp_ns)
            if mode == SKIP:
                stats.skipped()
                self._log(camera_id, stamp_ns, 'skipped')
                return mode
            old = self.pending.get(camera_id)
            if old is not None:
                stats.dropped(old.active)
                self._log(camera_id, old.stamp_ns, 'dropped')
            self.pending[camera_id] = Pending(camera_id, int(stamp_ns), mode, active, payload)
            self.cv.notify()
            return mode

    def on_weight(self, plate_id: str, stamp_ns: int, grams: float, valid: bool = True) -> bool:
        with self.cv:
            return self.scheduler.on_weight(plate_id, stamp_ns, grams, valid)

    def wake(self) -> None:
        with self.cv:
            self.cv.notify_all()

    # --- the worker -----------------------------------------------------------------------------
    def take(self, timeout_s: float = 0.5) -> list[Pending]:
        """The queued frames (camera order), waiting up to ``timeout_s`` for one: every one,
        except that ``shoppers`` frames queued beside a ``full`` one wait for the next round
        (once each; module docstring); with ``max_batch`` > 0 at most that many, full frames
        and frames already deferred first, oldest stamp first. A camera whose previous frame
        is still being detected (taken, not yet :meth:`done` or :meth:`failed`) is left out:
        with several workers a camera's detections still come out in stamp order."""
        with self.cv:
            if not any(c not in self.busy for c in self.pending):
                self.cv.wait(timeout=timeout_s)
            queued = [self.pending[c] for c in self.cameras
                      if c in self.pending and c not in self.busy]
            first = any(p.mode == FULL for p in queued)
            chosen = []
            for p in queued:
                if first and p.mode != FULL and not p.deferred:
                    p.deferred = True
                    continue
                chosen.append(p)
            if self.max_batch and len(chosen) > self.max_batch:
                # full frames and shoppers frames that already waited a round first, oldest
                # stamp first; the rest stay queued for the next round
                chosen.sort(key=lambda p: (p.mode != FULL and not p.deferred, p.stamp_ns))
                chosen = sorted(chosen[:self.max_batch], key=lambda p: self.cameras.index(
                    p.camera_id))
            self.busy.update(p.camera_id for p in chosen)
            return [self.pending.pop(p.camera_id) for p in chosen]

    def detect(self, batch: list[Pending], images) -> list[tuple[list, float]]:
        """Detections per frame of the batch (images: BGR arrays in batch order)."""
        extra: list = []
        if self.streams:
            results = [self.detector.detect(img, stream=p.camera_id)
                       for p, img in zip(batch, images)]
        elif getattr(self.detector, 'two_stage', False):
            select = [self._selector(p) if p.mode == FULL else None for p in batch]
            with self.cv:
                for p in batch:
                    last = self.proposals.get(p.camera_id)
                    p.reused = p.mode == FULL and last is not None and \
                        self.scheduler.shoppers_reusable(p.stamp_ns, last[0])
                    p.shoppers_stamp_ns = last[0] if p.reused else p.stamp_ns
                given = [self.proposals[p.camera_id][1] if p.reused else None for p in batch]
            results = self.detector.detect_batch(list(images), select, extra, given)
            with self.cv:
                for p, shoppers in zip(batch, given):
                    if not p.reused:
                        self.proposals[p.camera_id] = (p.stamp_ns, shoppers)
        else:
            results = self.detector.detect_batch(list(images))
        with self.cv:
            for k, (p, (dets, _)) in enumerate(zip(batch, results)):
                boxes = list(dets) + (list(extra[k]) if extra else [])
                self.scheduler.on_detections(p.camera_id, p.stamp_ns,
                                             [(d.class_name, d.x0, d.y0, d.x1, d.y1)
                                              for d in boxes])
        return results

    def _selector(self, p: Pending):
        def wanted(d) -> bool:
            with self.cv:
                return self.scheduler.crop_wanted(p.camera_id, p.stamp_ns,
                                                  (d.x0, d.y0, d.x1, d.y1))
        return wanted

    def done(self, p: Pending, latency_ms: float) -> None:
        with self.cv:
            self.stats[p.camera_id].processed(p.mode == FULL, latency_ms, p.reused)
            self._log(p.camera_id, p.stamp_ns, 'full' if p.mode == FULL else 'shoppers')
            self._release(p)

    def failed(self, p: Pending) -> None:
        with self.cv:
            self.stats[p.camera_id].failed()
            self._log(p.camera_id, p.stamp_ns, 'failed')
            self._release(p)

    def _log(self, camera_id: str, stamp_ns: int, outcome: str) -> None:
        if self.frame_log is not None:
            self.frame_log.append((camera_id, int(stamp_ns), outcome))

    def frame_outcomes(self) -> list[tuple[str, int, str]]:
        """The recorded outcome of every frame so far (``record_frames``), and ``unprocessed``
        for the frames still queued; [] when not recording."""
        with self.cv:
            if self.frame_log is None:
                return []
            return list(self.frame_log) + [(p.camera_id, p.stamp_ns, 'unprocessed')
                                           for p in self.pending.values()]

    def _release(self, p: Pending) -> None:
        self.busy.discard(p.camera_id)
        if p.camera_id in self.pending:
            self.cv.notify_all()      # its next frame may go to a waiting worker

    def summary(self) -> dict:
        """The run's totals per camera and overall (``frame_stats.run_summary``)."""
        with self.cv:
            return run_summary(self.stats)

    def report(self) -> dict[str, tuple[str, str, dict]]:
        """Per camera (level, message, values) of the window since the last report."""
        with self.cv:
            return {c: s.report() for c, s in self.stats.items()}


# --- construction from the detector's ROS parameters (node and benchmark alike) ---------------
SCHEDULE_KEYS = ('shopper_rate_hz', 'active_rate_hz', 'activity_hold_s', 'activity_grams',
                 'weight_baseline_s', 'reach_px', 'reach_margin', 'cameras_per_plate',
                 'active_shopper_rate_hz')


def make_detector(p: dict, catalog=None):
    """The YOLO detector of the node's parameters ``p`` (names as in config/params/store.yaml;
    missing ones take the node's defaults)."""
    from store_perception.detection import Detector
    return Detector(p.get('model_path') or None, int(p.get('imgsz', 416)),
                    float(p.get('conf_threshold', 0.25)), float(p.get('iou_threshold', 0.5)),
                    str(p.get('device', 'cpu')), catalog,
                    crop_model_path=p.get('crop_model_path') or None,
                    crop_size=int(p.get('crop_size', 224)),
                    crop_margin=float(p.get('crop_margin', 0.25)),
                    proposal_conf=float(p.get('crop_shopper_conf', 0.01)),
                    crop_max_inside=float(p.get('crop_max_inside', 1.0)),
                    hand_model_path=p.get('hand_model_path') or None,
                    hand_size=int(p.get('hand_size', 64)),
                    hand_proposal_conf=float(p.get('hand_proposal_conf', 0.05)),
                    runtime=str(p.get('runtime', 'auto')),
                    threads=int(p.get('onnx_threads', 0)))


def make_scheduler(p: dict, cameras, store=None) -> Scheduler:
    """The schedule of the node's parameters ``p``; plate geometry from ``store`` (None, or a
    camera it does not describe: that camera is always active)."""
    from store_perception.scheduler import plate_depths, plate_pixels, ScheduleParams
    params = ScheduleParams(**{k: (int(p[k]) if k == 'cameras_per_plate' else float(p[k]))
                               for k in SCHEDULE_KEYS if k in p})
    if store is None:
        return Scheduler(cameras, params)
    return Scheduler(cameras, params, plate_pixels(store, params.view_margin_px),
                     plate_depths(store))
