"""Synthetic plate-weight signals for the shelf tests (no ROS, no files).

A plate trace is the sum of: a base load, a slow drift (linear plus a random walk), the weight
changes of actions (a take or a return changes the weight when the hand leaves, at ``t_s``), the
hand pressing on the plate for ``reach_s`` before that (a jittery force of a few hundred grams to
1.5 kg), the plate ringing briefly after the hand leaves, Gaussian noise, and not-ready samples
(valid false, NaN). Stamps are the controller's millisecond ticks mapped to nanoseconds, with
sub-millisecond jitter; delivery is in ~100 ms batches, interleaved across plates.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NS_PER_S = 1_000_000_000


@dataclass
class Action:
    t_s: float                 # hand leaves the plate, weight changes [s]
    delta_grams: float         # weight change on this plate [g]
    reach_s: float = 0.8       # hand on the plate before t_s [s]
    press_grams: float = 600.0  # peak extra force of the hand [g]; 0 for no press
    ring_grams: float = 8.0    # initial ringing amplitude after the hand leaves [g]


@dataclass
class PlateSignal:
    base_grams: float = 5000.0
    noise_grams: float = 0.5
    drift_grams_per_hour: float = 3.0
    drift_walk_grams_per_sqrt_hour: float = 1.0
    rate_hz: float = 40.0
    nr_probability: float = 0.01
    actions: list[Action] = field(default_factory=list)
    t0_s: float = 1000.0       # sensor time of the first sample [s]

    def samples(self, duration_s: float, rng: np.random.Generator):
        """Return ``(stamp_ns, weight_grams, valid)`` arrays for ``duration_s`` of signal."""
        n = int(duration_s * self.rate_hz)
        t = np.arange(n) / self.rate_hz
        w = np.full(n, self.base_grams, dtype=float)
        w += self.drift_grams_per_hour * t / 3600.0
        if self.drift_walk_grams_per_sqrt_hour > 0 and n > 1:
            step_sd = self.drift_walk_grams_per_sqrt_hour * np.sqrt(1.0 / self.rate_hz / 3600.0)
            w += np.cumsum(rng.normal(0.0, step_sd, n))
        for a in self.actions:
            w += np.where(t >= a.t_s, a.delta_grams, 0.0)
            if a.press_grams > 0:
                on = (t >= a.t_s - a.reach_s) & (t < a.t_s)
                phase = (t[on] - (a.t_s - a.reach_s)) / a.reach_s
                envelope = np.sin(np.pi * phase) ** 0.5
                wobble = 1.0 + 0.2 * np.sin(2 * np.pi * 7.0 * t[on] + rng.uniform(0, 6.28))
                w[on] += a.press_grams * envelope * wobble + rng.normal(0, 15.0, on.sum())
            if a.ring_grams > 0:
                after = (t >= a.t_s) & (t < a.t_s + 1.0)
                tau = t[after] - a.t_s
                w[after] += a.ring_grams * np.exp(-tau / 0.08) * np.cos(2 * np.pi * 9.0 * tau)
        w += rng.normal(0.0, self.noise_grams, n)
        valid = rng.random(n) >= self.nr_probability
        w = np.where(valid, w, np.nan)
        tick_ms = np.floor((self.t0_s + t) * 1000.0 + rng.uniform(0, 0.4, n)).astype(np.int64)
        stamp_ns = tick_ms * 1_000_000          # integer ns: exact even for epoch stamps
        return stamp_ns, w, valid


def deliver(detectors: dict, streams: dict, batch_s: float = 0.1):
    """Feed several plates' samples in ~100 ms batches, interleaved across plates.

    ``streams`` maps plate id to ``(stamp_ns, weight_grams, valid)`` arrays. Returns the steps
    in the order the detectors produced them.
    """
    t_first = min(int(s[0][0]) for s in streams.values())
    t_last = max(int(s[0][-1]) for s in streams.values())
    batch_ns = int(batch_s * NS_PER_S)
    idx = {pid: 0 for pid in streams}
    steps = []
    edge = t_first + batch_ns
    while edge <= t_last + batch_ns:
        for pid, (stamps, weights, valid) in streams.items():
            i = idx[pid]
            j = int(np.searchsorted(stamps, edge, side='left'))
            for k in range(i, j):
                steps.extend(detectors[pid].add(int(stamps[k]), float(weights[k]),
                                                bool(valid[k])))
            idx[pid] = j
        edge += batch_ns
    return steps
