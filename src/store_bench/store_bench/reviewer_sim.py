"""A simulated reviewer for benchmarks only: answers from the scenario's truth (no rclpy).

Truth comes from the scenario (with the ROS time of scenario t=0) or from the receipt
recorder's ``ground_truth.jsonl`` (whose action records carry their publish ``stamp_ns``). A
request is matched to the truth action on one of its plates whose time (the hand leaves) lies
within ``[start - window_s, settled + window_s]``; the answer is that shopper, SKU, action and
quantity (whether or not the machine offered it), or "no change" when no action matches. With
probability ``error_rate`` the reviewer instead picks another of the offered candidates. The
answer is due ``delay_s`` after the request.
"""
from __future__ import annotations

import json
import pathlib
import random
from dataclasses import dataclass

from store_cart.model import ACTION_NONE, ACTION_RETURN, ACTION_TAKE, ReviewDecisionData

from store_review.evidence import start_ns_of

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class TruthAction:
    stamp_ns: int
    shopper_id: str
    plates: tuple[str, ...]
    sku: str
    action: int
    quantity: int


class SimulatedReviewer:

    def __init__(self, actions: list[TruthAction], delay_s: float = 30.0,
                 error_rate: float = 0.0, seed: int = 0, window_s: float = 1.5,
                 name: str = 'sim-reviewer'):
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f'error_rate must be in 0..1, got {error_rate}')
        self.actions = sorted(actions, key=lambda a: a.stamp_ns)
        self.delay_ns = int(delay_s * NS_PER_S)
        self.error_rate = error_rate
        self.rng = random.Random(seed)
        self.window_ns = int(window_s * NS_PER_S)
        self.name = name
        self.answered = 0
        self.wrong = 0

    @classmethod
    def from_scenario(cls, scenario, t0_ns: int, **kw) -> 'SimulatedReviewer':
        acts = [TruthAction(t0_ns + int(round(a.t_s * NS_PER_S)), s.id, a.plates, a.sku,
                            ACTION_TAKE if a.kind == 'take' else ACTION_RETURN, a.quantity)
                for s in scenario.shoppers for a in s.actions]
        return cls(acts, **kw)

    @classmethod
    def from_ground_truth(cls, path: str | pathlib.Path, **kw) -> 'SimulatedReviewer':
        acts = []
        for line in pathlib.Path(path).read_text().splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            if 'data' in d and isinstance(d['data'], str):      # a recorded std_msgs/String
                d = json.loads(d['data'])
            if d.get('event') != 'action':
                continue
            plates = (d['plate'],) + ((d['straddle'],) if d.get('straddle') else ())
            acts.append(TruthAction(int(d['stamp_ns']), d['shopper_id'], plates, d['sku'],
                                    ACTION_TAKE if d['kind'] == 'take' else ACTION_RETURN,
                                    int(d['quantity'])))
        return cls(acts, **kw)

    def truth_for(self, request) -> TruthAction | None:
        start = start_ns_of(request.event_id, request.stamp_ns)
        lo, hi = start - self.window_ns, request.stamp_ns + self.window_ns
        plates = set(request.plate_ids)
        hits = [a for a in self.actions if lo <= a.stamp_ns <= hi and plates & set(a.plates)]
        return min(hits, key=lambda a: abs(a.stamp_ns - request.stamp_ns)) if hits else None

    def answer(self, request, now_ns: int) -> tuple[int, ReviewDecisionData, bool]:
        """(due time [ns], the decision, whether it is the truth)."""
        t = self.truth_for(request)
        truth = (t.shopper_id, t.sku, t.action, t.quantity) if t else ('', '', ACTION_NONE, 0)
        pick = truth
        if self.rng.random() < self.error_rate:
            others = [(c.shopper_id, c.sku, c.action, c.quantity) for c in request.candidates]
            others = [o for o in others if o != truth] or [('', '', ACTION_NONE, 0)]
            pick = self.rng.choice(others)
        if pick[3] <= 0:
            pick = ('', '', ACTION_NONE, 0)
        due = now_ns + self.delay_ns
        self.answered += 1
        self.wrong += pick != truth
        return due, ReviewDecisionData(request.request_id, self.name, pick[0], pick[1], pick[2],
                                       pick[3], due), pick == truth
