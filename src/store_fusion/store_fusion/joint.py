"""Joint shopper assignment over concurrent shelf events.

One camera's hand ray has depth ambiguity: when two shoppers reach into adjacent plates at about
the same time, each event alone can give both of them a hand at its plate. But one shopper
cannot be at two plates at one moment, so events whose windows overlap are explained together:

* two shelf events are *concurrent* when their ``[start, settled]`` windows overlap or are less
  than ``gap_s`` apart; concurrent events on disjoint plate sets are *linked* (a shopper taking
  one item across two plates makes one event, not two);
* linked events form groups (connected components). A group of 2..``max_group`` events is
  enumerated exactly: an assignment gives each event one shopper or "nobody seen", and scores
  the product of each event's per-shopper likelihood (``fusion.shopper_evidence``, the same
  numbers :func:`fusion.shopper_posterior` normalises) times ``same_shopper_factor`` for every
  linked pair that the assignment gives to one shopper (two hands, two plates, one moment: rare,
  not impossible). "Nobody seen" is never penalised. Within a group a hand observation counts
  for the plate it is nearest to (``group_evidence``): one hand seen between two adjacent plates
  is not evidence for both events;
* an event's shopper posterior is the marginal of that joint posterior. A lone event, or a group
  larger than ``max_group`` (or with too many assignments), keeps the posterior of the event
  alone, so nothing changes where the joint has nothing to add. A group whose assignments are
  equally likely stays ambiguous: the marginals split, and the cart sends it to review.

Pure Python, never imports rclpy; used by ``EventFuser`` (the node) and ``offline.run_modes``.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

from store_fusion.fusion import Candidate, normalise, shopper_evidence

NS = 1_000_000_000


@dataclass(frozen=True)
class JointParams:
    gap_s: float = 0.5                # events less than this apart are concurrent [s]
    same_shopper_factor: float = 0.005  # one shopper on two linked events: likelihood x this
    max_group: int = 4                # larger groups keep per-event posteriors (< 2: joint off)
    max_assignments: int = 20000      # and so do groups with more assignments than this

    def __post_init__(self):
        if self.gap_s < 0:
            raise ValueError(f'gap_s must be >= 0, got {self.gap_s}')
        if not 0.0 <= self.same_shopper_factor <= 1.0:
            raise ValueError(f'same_shopper_factor must be in 0..1, got '
                             f'{self.same_shopper_factor}')

    @property
    def enabled(self) -> bool:
        return self.max_group >= 2


@dataclass
class EventEvidence:
    """What the joint needs of one shelf event: its window, its plates, and every shopper's
    unnormalised likelihood (``Candidate.likelihood``) against ``nobody``."""
    event_id: str
    start_ns: int
    settled_ns: int
    plate_ids: tuple
    candidates: list = field(default_factory=list)     # [Candidate]
    nobody: float = 0.01
    hypotheses: tuple = ()      # the event's weight hypotheses (products in the hands: who)
    n_skus: int = 0             # SKUs in the catalogue (0: product evidence unused)


def concurrent(a, b, gap_s: float) -> bool:
    """Windows ``[start, settled]`` of a and b overlap or are less than ``gap_s`` apart."""
    gap_ns = gap_s * NS
    return a.start_ns < b.settled_ns + gap_ns and b.start_ns < a.settled_ns + gap_ns


def linked(a, b, gap_s: float) -> bool:
    """Concurrent events on disjoint plates: one shopper is unlikely to have caused both."""
    return concurrent(a, b, gap_s) and not set(a.plate_ids) & set(b.plate_ids)


def groups(events: list, gap_s: float) -> list[list[int]]:
    """Connected components of the ``linked`` relation (indices into ``events``, each sorted;
    components ordered by their first index). Anything with start_ns, settled_ns, plate_ids."""
    parent = list(range(len(events)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(events)), key=lambda i: events[i].start_ns)
    for k, i in enumerate(order):
        for j in order[k + 1:]:
            if events[j].start_ns >= events[i].settled_ns + gap_s * NS:
                break       # sorted by start: no later event can be concurrent with i
            if linked(events[i], events[j], gap_s):
                parent[root(i)] = root(j)
    comps: dict[int, list[int]] = {}
    for i in range(len(events)):
        comps.setdefault(root(i), []).append(i)
    return sorted(comps.values(), key=lambda c: c[0])


def group_evidence(geom, group: list[EventEvidence], history, params,
                   joint: JointParams) -> list[EventEvidence]:
    """The evidence of each event of a group (copies, ``candidates`` from ``history``), a hand
    observation counting only for the nearest of the plates of the event and of the events
    linked to it (``fusion.shopper_evidence``'s rivals). ``params``: ``FusionParams``."""
    out = []
    for ev in group:
        rivals = tuple(p for other in group if other is not ev
                       and linked(ev, other, joint.gap_s) for p in other.plate_ids)
        out.append(replace(ev, candidates=shopper_evidence(
            geom, ev.plate_ids, ev.start_ns, ev.settled_ns, history, params, rivals,
            ev.hypotheses, ev.n_skus), nobody=params.nobody))
    return out


def _independent(ev: EventEvidence) -> list[Candidate]:
    return normalise([replace(c) for c in ev.candidates], ev.nobody)


def marginals(group: list[EventEvidence], params: JointParams
              ) -> tuple[list[list[Candidate]], bool]:
    """(per event of ``group``: its candidates (copies) with ``probability`` the marginal of
    the joint posterior, best first; whether the joint was used). Exact enumeration; per-event
    posteriors when the group is a single event, larger than ``max_group``, or has more than
    ``max_assignments``."""
    alone = [_independent(ev) for ev in group], False
    if len(group) < 2 or len(group) > params.max_group:
        return alone
    # options per event: (shopper_id, likelihood), '' = nobody seen; zero likelihoods drop out
    options = [[(c.shopper_id, c.likelihood) for c in ev.candidates if c.likelihood > 0]
               + [('', ev.nobody)] for ev in group]
    if math.prod(len(o) for o in options) > params.max_assignments:
        return alone
    pairs = [(i, j) for i in range(len(group)) for j in range(i + 1, len(group))
             if linked(group[i], group[j], params.gap_s)]
    mass = [dict.fromkeys((sid for sid, _ in o), 0.0) for o in options]
    total = 0.0
    for combo in itertools.product(*options):
        w = math.prod(like for _, like in combo)
        if w <= 0.0:
            continue
        for i, j in pairs:
            if combo[i][0] and combo[i][0] == combo[j][0]:
                w *= params.same_shopper_factor
        total += w
        for k, (sid, _) in enumerate(combo):
            mass[k][sid] += w
    if total <= 0.0:
        return alone
    out = []
    for ev, m in zip(group, mass):
        cands = [replace(c, probability=m.get(c.shopper_id, 0.0) / total)
                 for c in ev.candidates]
        cands.sort(key=lambda c: -c.probability)
        out.append(cands)
    return out, True


def joint_posteriors(events: list[EventEvidence], params: JointParams
                     ) -> tuple[list[list[Candidate]], list[list[int]]]:
    """(shopper posterior per event, best first; the group each event was decided with, as
    indices into ``events``: itself alone when it was decided alone)."""
    post: list = [None] * len(events)
    group_of: list = [[i] for i in range(len(events))]
    comps = groups(events, params.gap_s) if params.enabled else [[i] for i in range(len(events))]
    for comp in comps:
        cands, joint = marginals([events[i] for i in comp], params)
        for i, c in zip(comp, cands):
            post[i] = c
            if joint:
                group_of[i] = comp
    return post, group_of
