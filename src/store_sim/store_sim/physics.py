"""Plate physics and load-cell ADC model: what each plate's HX711 reports over time.

The true load of a plate is the sum of the individual units on it (each unit has its own weight,
drawn from N(unit_grams, unit_grams_sd) once), plus, around every action, the hand: it arrives
``reach_s`` before ``t_s`` and presses (a ramped, jittery force of a few hundred to ~1500 g), the
item leaves (take) or lands (return) at ``t_s``, then the plate rings briefly (damped, ~0.3 s).
An item resting across two plates (``straddle``) splits its weight between them.

The ADC turns load into counts: ``tare_offset_counts + grams / grams_per_count`` plus gaussian
noise (0.3-0.6 g), slow drift (1-3 g per hour plus a small temperature sinusoid), integer
quantisation, saturation at the 24-bit rails, and rare not-ready samples.

Scenario time ``t_s`` (seconds, 0 = scenario start) may be any real number: before the first
action the shelves hold their initial load, after the last they hold the final one, so the model
can stream idle rows forever. Everything is vectorised over time; this module never imports
rclpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from store_sim.scenario import DEFAULT_REACH_S, Scenario

ADC_MIN, ADC_MAX = -(1 << 23), (1 << 23) - 1


@dataclass(frozen=True)
class PhysicsParams:
    reach_jitter: float = 0.2              # reach_s is scaled by U(1 - j, 1 + j)
    press_grams: tuple[float, float] = (300.0, 1500.0)   # peak hand force range [g]
    press_ramp_s: tuple[float, float] = (0.08, 0.2)      # ramp up / down durations [s]
    press_jitter: float = 0.15             # relative wobble of the press force
    ring_s: tuple[float, float] = (0.2, 0.4)             # ringing duration after t_s [s]
    ring_hz: tuple[float, float] = (6.0, 14.0)           # ringing frequency [Hz]
    ring_rel: tuple[float, float] = (0.05, 0.2)          # ringing amplitude / moved weight
    ring_press_rel: tuple[float, float] = (0.02, 0.06)   # ... plus this share of the press
    straddle_split: tuple[float, float] = (0.35, 0.65)   # share of the primary plate
    noise_grams: tuple[float, float] = (0.3, 0.6)        # per-plate noise sd range [g]
    drift_grams_per_h: tuple[float, float] = (1.0, 3.0)  # per-plate drift rate magnitude
    temp_grams: tuple[float, float] = (0.1, 0.4)         # temperature sinusoid amplitude [g]
    temp_period_s: tuple[float, float] = (600.0, 3600.0)
    not_ready_rate: float = 2e-4           # probability of an NR sample per channel and sample
    # true mean unit weight minus the catalog's, per SKU [g]: ((sku, offset), ...). The real
    # products differ from the catalog (benchmarks of learning weight models from reviews)
    catalog_bias: tuple[tuple[str, float], ...] = ()


@dataclass
class PlateEvent:
    """One physical change on one plate (a share of an action when the item straddles)."""
    plate_id: str
    t_s: float                 # the item leaves / lands [s]
    reach_start_s: float       # the hand arrives [s]
    delta_grams: float         # settled weight change of this plate [g]
    press_peak_grams: float
    ramp_up_s: float
    ramp_down_s: float
    ring_s: float
    ring_hz: float
    ring_grams: float
    wobble: tuple[tuple[float, float, float], ...]  # (amplitude rel, frequency Hz, phase)
    shopper_id: str = ''
    action_index: int = -1


@dataclass
class PlateState:
    plate_id: str
    initial_grams: float       # load before the scenario [g]
    unit_grams: dict = field(default_factory=dict)  # sku -> list of unit weights initially


class StorePhysics:
    """The physical truth and ADC model of every plate of a store playing one scenario."""

    def __init__(self, store, scenario: Scenario, seed: int | None = None,
                 params: PhysicsParams = PhysicsParams()):
        self.store = store
        self.scenario = scenario
        self.params = params
        base = scenario.seed if seed is None else seed
        rng = np.random.default_rng([int(base) & 0xFFFFFFFF, 0x5105])
        self.noise_rng = np.random.default_rng([int(base) & 0xFFFFFFFF, 0x0153])
        self.plate_ids = sorted(store.plates)
        self.index = {pid: i for i, pid in enumerate(self.plate_ids)}
        p = params
        n = len(self.plate_ids)
        # per-plate ADC characteristics
        self.noise_grams = rng.uniform(*p.noise_grams, n)
        self.drift_grams_per_s = (rng.uniform(*p.drift_grams_per_h, n) / 3600.0
                                  * rng.choice([-1.0, 1.0], n))
        self.temp_grams = rng.uniform(*p.temp_grams, n)
        self.temp_period_s = rng.uniform(*p.temp_period_s, n)
        self.temp_phase = rng.uniform(0, 2 * np.pi, n)
        plates = store.plates
        self.tare_counts = np.array([plates[pid].load_cell.tare_offset_counts
                                     for pid in self.plate_ids], dtype=float)
        self.grams_per_count = np.array([plates[pid].load_cell.grams_per_count
                                         for pid in self.plate_ids], dtype=float)

        bias = dict(p.catalog_bias)
        # individual units on each plate: (sku, grams, share map) -- a unit may straddle
        stock: dict[str, dict[str, list[float]]] = {pid: {} for pid in self.plate_ids}
        for pid, entry in store.planogram.items():
            prod = store.catalog[entry.sku]
            stock[pid][entry.sku] = list(
                rng.normal(prod.unit_grams + bias.get(entry.sku, 0.0), prod.unit_grams_sd,
                           entry.initial_units))
        self.initial_grams = np.array([sum(sum(v) for v in stock[pid].values())
                                       for pid in self.plate_ids])
        held: dict[str, dict[str, list[float]]] = {}
        self.events: list[PlateEvent] = []
        self.action_grams: list[tuple[str, int, float]] = []  # (shopper, index, moved grams)
        timeline = sorted(((a.t_s, i, j) for i, s in enumerate(scenario.shoppers)
                           for j, a in enumerate(s.actions)))
        for _, i, j in timeline:
            shopper = scenario.shoppers[i]
            a = shopper.actions[j]
            hands = held.setdefault(shopper.id, {})
            units = []
            for _ in range(a.quantity):
                if a.kind == 'take':
                    pool = stock.setdefault(a.plate, {}).setdefault(a.sku, [])
                    if pool:
                        w = pool.pop(int(rng.integers(len(pool))))
                    else:   # an invalid scenario; stay physical anyway
                        prod = store.catalog[a.sku]
                        w = float(rng.normal(prod.unit_grams + bias.get(a.sku, 0.0),
                                             prod.unit_grams_sd))
                    hands.setdefault(a.sku, []).append(w)
                else:
                    pool = hands.setdefault(a.sku, [])
                    if pool:
                        w = pool.pop(int(rng.integers(len(pool))))
                    else:
                        prod = store.catalog[a.sku]
                        w = float(rng.normal(prod.unit_grams + bias.get(a.sku, 0.0),
                                             prod.unit_grams_sd))
                    stock.setdefault(a.plate, {}).setdefault(a.sku, []).append(w)
                units.append(w)
            moved = float(sum(units))
            self.action_grams.append((shopper.id, j, moved))
            sign = -1.0 if a.kind == 'take' else 1.0
            reach = (a.reach_s if a.reach_s is not None else DEFAULT_REACH_S)
            reach *= rng.uniform(1 - p.reach_jitter, 1 + p.reach_jitter)
            shares = [(a.plate, 1.0)]
            if a.straddle:
                f = float(rng.uniform(*p.straddle_split))
                shares = [(a.plate, f), (a.straddle, 1.0 - f)]
                if a.kind == 'take':
                    # the unit rested across both plates since before the scenario
                    self.initial_grams[self.index[a.plate]] -= moved * (1 - f)
                    self.initial_grams[self.index[a.straddle]] += moved * (1 - f)
            press = float(rng.uniform(*p.press_grams))
            for pid, share in shares:
                up = float(rng.uniform(*p.press_ramp_s))
                self.events.append(PlateEvent(
                    plate_id=pid, t_s=a.t_s, reach_start_s=a.t_s - reach,
                    delta_grams=sign * moved * share, press_peak_grams=press * share,
                    ramp_up_s=up, ramp_down_s=float(rng.uniform(*p.press_ramp_s)),
                    ring_s=float(rng.uniform(*p.ring_s)), ring_hz=float(rng.uniform(*p.ring_hz)),
                    ring_grams=share * (moved * float(rng.uniform(*p.ring_rel))
                                        + press * float(rng.uniform(*p.ring_press_rel))),
                    wobble=tuple((float(rng.uniform(0.3, 1.0)) * p.press_jitter,
                                  float(rng.uniform(1.5, 6.0)), float(rng.uniform(0, 6.3)))
                                 for _ in range(3)),
                    shopper_id=shopper.id, action_index=j))
        self._events_by_plate: dict[int, list[PlateEvent]] = {}
        for ev in self.events:
            self._events_by_plate.setdefault(self.index[ev.plate_id], []).append(ev)
        self._step_t: dict[int, np.ndarray] = {}
        self._step_cum: dict[int, np.ndarray] = {}
        for k, evs in self._events_by_plate.items():
            evs.sort(key=lambda e: e.t_s)
            self._step_t[k] = np.array([e.t_s for e in evs])
            self._step_cum[k] = np.cumsum([e.delta_grams for e in evs])

    # --- truth ---------------------------------------------------------------------------------
    def settled_grams(self, t_s) -> np.ndarray:
        """(plates, N) true settled load (items only, no hand) at scenario times ``t_s``."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        out = np.repeat(self.initial_grams[:, None], t.size, axis=1)
        for k, times in self._step_t.items():
            idx = np.searchsorted(times, t, side='right')
            cum = np.concatenate([[0.0], self._step_cum[k]])
            out[k] += cum[idx]
        return out

    def load_grams(self, t_s) -> np.ndarray:
        """(plates, N) total force on each plate [g]: items, hand press and ringing."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        out = self.settled_grams(t)
        if t.size == 0:
            return out
        t_lo, t_hi = t.min(), t.max()
        for k, evs in self._events_by_plate.items():
            for ev in evs:
                if ev.reach_start_s > t_hi or ev.t_s + ev.ring_s < t_lo:
                    continue
                out[k] += _press(ev, t) + _ring(ev, t)
        return out

    # --- ADC ------------------------------------------------------------------------------------
    def drift_grams(self, t_s) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        return (self.drift_grams_per_s[:, None] * t[None, :]
                + self.temp_grams[:, None] * np.sin(
                    2 * np.pi * t[None, :] / self.temp_period_s[:, None]
                    + self.temp_phase[:, None]))

    def adc(self, t_s, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """ADC counts (plates, N) int64 and not-ready mask (plates, N) at scenario times."""
        rng = self.noise_rng if rng is None else rng
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        grams = self.load_grams(t) + self.drift_grams(t)
        grams += rng.standard_normal(grams.shape) * self.noise_grams[:, None]
        counts = self.tare_counts[:, None] + grams / self.grams_per_count[:, None]
        counts = np.clip(np.rint(counts), ADC_MIN, ADC_MAX).astype(np.int64)
        not_ready = rng.random(grams.shape) < self.params.not_ready_rate
        return counts, not_ready

    def counts_to_grams(self, counts) -> np.ndarray:
        """Decode (plates, N) counts with each plate's calibration, as the driver does."""
        return (np.asarray(counts, dtype=float) - self.tare_counts[:, None]) \
            * self.grams_per_count[:, None]

    def controller_rows(self, controller_id: str, t_s,
                        rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, n_channels) counts and NR mask for one controller, channels in wiring order.

        Unwired channels read noise around zero counts.
        """
        ctrl = self.store.controller(controller_id)
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        counts, nr = self.adc(t, rng)
        rows = np.zeros((t.size, ctrl.n_channels), dtype=np.int64)
        mask = np.zeros((t.size, ctrl.n_channels), dtype=bool)
        wired = set()
        for plate in self.store.plates_of_controller(controller_id):
            k = self.index[plate.id]
            rows[:, plate.load_cell.channel] = counts[k]
            mask[:, plate.load_cell.channel] = nr[k]
            wired.add(plate.load_cell.channel)
        for ch in range(ctrl.n_channels):
            if ch not in wired:
                rows[:, ch] = np.rint((rng or self.noise_rng).normal(0, 50, t.size))
        return rows, mask


def _press(ev: PlateEvent, t: np.ndarray) -> np.ndarray:
    """Hand force: ramps up from reach_start, wobbles, ramps down to zero at t_s."""
    a, b = ev.reach_start_s, ev.t_s
    env = np.clip((t - a) / ev.ramp_up_s, 0, 1) * np.clip((b - t) / ev.ramp_down_s, 0, 1)
    wobble = np.ones_like(t)
    for amp, hz, ph in ev.wobble:
        wobble += amp * np.sin(2 * np.pi * hz * (t - a) + ph)
    return ev.press_peak_grams * env * wobble


def _ring(ev: PlateEvent, t: np.ndarray) -> np.ndarray:
    """Damped ringing after the item leaves or lands."""
    dt = t - ev.t_s
    on = (dt >= 0) & (dt <= ev.ring_s)
    tau = ev.ring_s / 4.0
    out = np.zeros_like(t)
    out[on] = ev.ring_grams * np.exp(-dt[on] / tau) * np.sin(2 * np.pi * ev.ring_hz * dt[on])
    return out
