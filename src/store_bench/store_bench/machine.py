"""How fast the machine is right now, for benchmarks that run in real time on a shared host.

The live graph's dropped frames and latency depend on the CPU the host gives this machine at
the moment, not only on the code: two runs of the same code an hour apart differed by 3.6
points of reach frames dropped (RESULTS.md). Two figures, taken around each run, let a reader
tell the machine from the code:

* :func:`probe_ms`: the median time of one fixed piece of the detector's own work (the crop
  stage's graph call on one fixed 224 px input, one ONNX Runtime thread), in wall
  milliseconds; it grows when the host shares the cores with others. It times the shipped
  crop model, so it moves when that model changes: 14-15 ms on this machine idle with the
  yolov8n crop model, 5.6-5.8 ms with the thinner one shipped on 2026-12-06;
* :class:`StealMeter`: the share of CPU time the hypervisor reports as stolen (``/proc/stat``)
  over a run.

Linux only for the steal share (None elsewhere).
"""
from __future__ import annotations

import functools
import statistics
import time

import numpy as np


@functools.lru_cache(maxsize=1)
def _probe_model():
    """The shipped crop model on one ONNX Runtime thread, loaded once per process (a benchmark
    probes before each of its runs); None when it cannot be loaded."""
    try:
        from store_perception.detection import CROP_WEIGHTS, default_model_path
        from store_perception.onnx_runtime import OnnxYolo, onnx_path
        return OnnxYolo(onnx_path(default_model_path(CROP_WEIGHTS)), threads=1)
    except (ImportError, FileNotFoundError, ValueError):
        return None


def probe_ms(repeats: int = 15) -> float | None:
    """Median wall ms of the crop model's graph call on a fixed input (one thread); None when
    the shipped ONNX model cannot be loaded."""
    model = _probe_model()
    if model is None:
        return None
    image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    model.predict([image], 224, 0.25, 0.5)           # warm-up
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        model.predict([image], 224, 0.25, 0.5)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _cpu_jiffies(path: str = '/proc/stat') -> tuple[int, int] | None:
    """(all CPU jiffies, stolen jiffies) from the first line of ``/proc/stat``."""
    try:
        with open(path) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != 'cpu' or len(fields) < 9:
        return None
    values = [int(v) for v in fields[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
    return sum(values[:8]), values[7]


class StealMeter:
    """The share of CPU time stolen by the hypervisor between construction and :meth:`share`."""

    def __init__(self, path: str = '/proc/stat'):
        self.path = path
        self.start = _cpu_jiffies(path)

    def share(self) -> float | None:
        end = _cpu_jiffies(self.path)
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        return (end[1] - self.start[1]) / (end[0] - self.start[0])
