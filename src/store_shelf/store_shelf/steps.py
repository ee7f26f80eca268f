"""Settled weight-step detection on one plate (no rclpy).

A plate sits at a stable *baseline* that is tracked slowly (so load-cell drift of a few grams per
hour never becomes an event). When a sample leaves the baseline band (``band_sigma`` times the
estimated noise, at least ``band_min_grams``) the plate is *active*: a hand pressing, an item
lifted, the plate ringing. The detector then waits until a window of ``settle_window_s`` is
stable (standard deviation and range under thresholds tied to the estimated noise) and reports
the change between the settled level and the baseline before the activity. A transient that
returns to the baseline (a hand leaning on the plate) gives a change under ``min_step_grams`` and
no step.

Only sample stamps drive the detector, never a clock, so a replay gives the same steps. Samples
are processed in stamp order; invalid ones (``valid`` false, NaN, inf) are skipped and stamps
older than the last one processed are dropped, so bursty delivery does not matter.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class WeightStep:
    """A settled weight change on one plate. Stamps are sensor time [ns]."""

    plate_id: str
    start_ns: int          # stamp of the first sample outside the baseline band
    settled_ns: int        # stamp of the first sample of the stable window (the plate settled)
    before_grams: float    # baseline before the activity [g]
    after_grams: float     # settled level [g]
    delta_grams: float     # after - before [g]; negative = weight removed
    noise_grams: float     # standard deviation of the delta estimate [g]
    detected_ns: int = 0   # stamp of the sample that completed the stable window
    minor: bool = False    # |delta| under min_step_grams but over min_partner_step_grams:
    #                        only meaningful as the partner of a step on an adjacent plate


@dataclass(frozen=True)
class StepDetectorParams:
    settle_window_s: float = 0.5          # stable window that declares the plate settled [s]
    min_settle_samples: int = 8           # samples the stable window must hold at least
    band_sigma: float = 6.0               # baseline band half-width in noise standard deviations
    band_min_grams: float = 3.0           # baseline band half-width at least [g]
    settle_std_sigma: float = 2.0         # stable window: std under this many noise std
    settle_range_sigma: float = 7.0       # stable window: max - min under this many noise std
    settle_min_range_grams: float = 2.0   # stable window: range threshold at least [g]
    settle_relax_after_s: float = 10.0    # thresholds grow linearly once active this long [s]
    min_step_grams: float = 10.0          # smallest change reported as a step [g]
    min_partner_step_grams: float = 3.0   # smallest change reported as a minor step [g]
    initial_noise_grams: float = 0.5      # noise std assumed before it is estimated [g]
    noise_floor_grams: float = 0.2        # noise std estimate never goes under this [g]
    noise_ceiling_grams: float = 5.0      # noise std estimate never goes over this [g]
    noise_tau_s: float = 30.0             # time constant of the noise estimate [s]
    baseline_tau_s: float = 3.0           # time constant of the baseline tracker [s]
    max_gap_s: float = 1.0                # a gap in valid samples longer than this restarts
    #                                       the stable window [s]

    def validate(self) -> 'StepDetectorParams':
        checks = [
            (self.settle_window_s > 0, 'settle_window_s must be > 0'),
            (self.min_settle_samples >= 2, 'min_settle_samples must be >= 2'),
            (self.band_sigma > 0 and self.band_min_grams >= 0, 'band must be positive'),
            (self.settle_std_sigma > 0 and self.settle_range_sigma > 0,
             'settle thresholds must be > 0'),
            (0 <= self.min_partner_step_grams <= self.min_step_grams,
             'need 0 <= min_partner_step_grams <= min_step_grams'),
            (0 < self.noise_floor_grams <= self.noise_ceiling_grams,
             'need 0 < noise_floor_grams <= noise_ceiling_grams'),
            (self.noise_tau_s > 0 and self.baseline_tau_s > 0, 'time constants must be > 0'),
            (self.settle_relax_after_s > 0, 'settle_relax_after_s must be > 0'),
            (self.max_gap_s > 0, 'max_gap_s must be > 0'),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self


class PlateStepDetector:
    """Turns one plate's samples into settled :class:`WeightStep` s."""

    IDLE = 'idle'
    ACTIVE = 'active'

    def __init__(self, plate_id: str, params: StepDetectorParams | None = None):
        self.plate_id = plate_id
        self.params = (params or StepDetectorParams()).validate()
        self.state = self.IDLE
        self.baseline_grams: float | None = None
        self._baseline_var_factor = 1.0   # variance of the baseline estimate / noise variance
        self._noise_var = self.params.initial_noise_grams ** 2
        self._last_ns: int | None = None        # last processed stamp (valid or not)
        self._last_valid: tuple[int, float] | None = None
        self._window: deque[tuple[int, float]] = deque()
        self._active_start_ns = 0
        self._active_before_grams = 0.0
        self._active_before_var_factor = 1.0
        # counters for diagnostics
        self.invalid_samples = 0
        self.out_of_order_samples = 0
        self.absorbed_changes = 0

    # --- public ------------------------------------------------------------------------------
    @property
    def noise_grams(self) -> float:
        p = self.params
        return min(max(math.sqrt(self._noise_var), p.noise_floor_grams), p.noise_ceiling_grams)

    @property
    def band_grams(self) -> float:
        return max(self.params.band_min_grams, self.params.band_sigma * self.noise_grams)

    def pending_since_ns(self) -> int | None:
        """While the plate is active, the stamp its activity started (a step it reports later
        starts there, and settles after); None when idle."""
        return self._active_start_ns if self.state == self.ACTIVE else None

    def add(self, stamp_ns: int, weight_grams: float, valid: bool = True) -> list[WeightStep]:
        """Process one sample; return the steps it completed (zero or one)."""
        stamp_ns = int(stamp_ns)
        if self._last_ns is not None and stamp_ns <= self._last_ns:
            self.out_of_order_samples += 1
            return []
        self._last_ns = stamp_ns
        if not valid or weight_grams is None or not math.isfinite(weight_grams):
            self.invalid_samples += 1
            return []
        w = float(weight_grams)
        gap = (self._last_valid is not None
               and stamp_ns - self._last_valid[0] > self.params.max_gap_s * NS_PER_S)
        prev = self._last_valid
        self._last_valid = (stamp_ns, w)
        if self.baseline_grams is None:
            self.baseline_grams = w
            self._baseline_var_factor = 1.0
            return []
        if self.state == self.IDLE:
            return self._idle(stamp_ns, w, prev if not gap else None)
        return self._active(stamp_ns, w, gap)

    def add_many(self, samples) -> list[WeightStep]:
        """Process an iterable of ``(stamp_ns, weight_grams, valid)``."""
        out: list[WeightStep] = []
        for stamp_ns, weight_grams, valid in samples:
            out.extend(self.add(stamp_ns, weight_grams, valid))
        return out

    # --- states ------------------------------------------------------------------------------
    def _alpha(self, dt_ns: int, tau_s: float) -> float:
        dt_s = max(dt_ns, 0) / NS_PER_S
        return 1.0 - math.exp(-dt_s / tau_s) if dt_s > 0 else 0.0

    def _idle(self, stamp_ns: int, w: float, prev: tuple[int, float] | None) -> list[WeightStep]:
        p = self.params
        if abs(w - self.baseline_grams) > self.band_grams:
            self.state = self.ACTIVE
            self._active_start_ns = stamp_ns
            self._active_before_grams = self.baseline_grams
            self._active_before_var_factor = self._baseline_var_factor
            self._window.clear()
            self._window.append((stamp_ns, w))
            return []
        if prev is not None:
            dt_ns = stamp_ns - prev[0]
            # noise from first differences: insensitive to drift; clipped so one odd sample
            # cannot inflate it
            d2 = min((w - prev[1]) ** 2 / 2.0, (3.0 * self.noise_grams) ** 2)
            a_n = self._alpha(dt_ns, p.noise_tau_s)
            self._noise_var += a_n * (d2 - self._noise_var)
            a_b = self._alpha(dt_ns, p.baseline_tau_s)
            self.baseline_grams += a_b * (w - self.baseline_grams)
            # variance of an exponential average of white noise -> a / (2 - a) per sample
            self._baseline_var_factor = ((1 - a_b) ** 2 * self._baseline_var_factor + a_b ** 2)
        return []

    def _active(self, stamp_ns: int, w: float, gap: bool) -> list[WeightStep]:
        p = self.params
        if gap:
            self._window.clear()
        self._window.append((stamp_ns, w))
        horizon = stamp_ns - int(p.settle_window_s * NS_PER_S)
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()
        n = len(self._window)
        if n < p.min_settle_samples:
            return []
        first_ns = self._window[0][0]
        # the window must span settle_window_s (one sample period of tolerance)
        period_ns = (stamp_ns - first_ns) / (n - 1)
        if stamp_ns - first_ns + period_ns < p.settle_window_s * NS_PER_S * 0.999:
            return []
        values = [v for _, v in self._window]
        ref = values[0]
        mean_off = sum(v - ref for v in values) / n
        var = sum((v - ref - mean_off) ** 2 for v in values) / (n - 1)
        rng = max(values) - min(values)
        sigma = self.noise_grams
        active_s = (stamp_ns - self._active_start_ns) / NS_PER_S
        relax = 1.0 + max(0.0, active_s - p.settle_relax_after_s) / p.settle_relax_after_s
        if (math.sqrt(var) > p.settle_std_sigma * sigma * relax
                or rng > max(p.settle_range_sigma * sigma, p.settle_min_range_grams) * relax):
            return []
        # settled
        level = ref + mean_off
        delta = level - self._active_before_grams
        window_sd = math.sqrt(var)
        self._noise_var += 0.1 * (min(var, (3.0 * sigma) ** 2) - self._noise_var)
        noise = max(sigma, window_sd) * math.sqrt(1.0 / n + self._active_before_var_factor)
        step = None
        if abs(delta) >= p.min_partner_step_grams:
            step = WeightStep(
                plate_id=self.plate_id, start_ns=self._active_start_ns, settled_ns=first_ns,
                before_grams=self._active_before_grams, after_grams=level, delta_grams=delta,
                noise_grams=noise, detected_ns=stamp_ns, minor=abs(delta) < p.min_step_grams)
        elif abs(delta) > self.band_grams:
            self.absorbed_changes += 1
        self.state = self.IDLE
        self.baseline_grams = level
        self._baseline_var_factor = 1.0 / n
        self._window.clear()
        return [step] if step is not None else []
