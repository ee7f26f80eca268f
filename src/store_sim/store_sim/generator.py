"""Deterministic scenario generator: difficulty levels 0..3 as knobs, one seed -> one scenario.

    generate_scenarios --store config/stores/demo.yaml --count 20 --seed 1000 --level 2 \
        [--max-concurrent N] --out DIR

Every generated scenario respects the store's inventory (no take from an empty plate, no return
beyond capacity), keeps >= 3 s between actions on one plate and its straddle partner, and passes
:func:`store_sim.scenario.validate`. Randomness comes only from a ``random.Random`` seeded with
the scenario seed, never from global state.
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from store_common.description import load_store, Store, StoreConfigError

from store_sim.scenario import Action, DEFAULT_REACH_S, MIN_PLATE_GAP_S, save_scenario, \
    Scenario, Shopper, validate
from store_sim.walkways import gate_center, MAX_WALK_SPEED_MPS, standing_spot, Walkways

NEAR_EQUAL_REL = 0.02   # two SKUs are near-equal in weight when within 2 % of each other
# between two actions of one shopper: arm back from the first plate, settle, walk, stop, and the
# reach of the next one (its hand arrives DEFAULT_REACH_S x up to 1.2 before its t_s) [s]
ACTION_OVERHEAD_S = 0.5 + 0.15 + 0.3 + 0.5 + 1.2 * DEFAULT_REACH_S
# a shopper stands at a plate's spot from ~2 s before the action's t_s to ~0.7 s after it:
# another shopper's stay closer than this to it must not overlap in time
SPOT_CLEARANCE_M = 0.6
STAY_S = 3.0


@dataclass(frozen=True)
class Difficulty:
    level: int
    max_concurrent: int            # shoppers in the store at once
    shoppers: tuple[int, int]      # shoppers per scenario (inclusive range)
    actions: tuple[int, int]       # actions per shopper (inclusive range)
    put_back_rate: float           # probability that an action returns a held item
    wrong_plate_return_rate: float  # probability that a return goes to a plate not its own
    multi_item_rate: float         # probability that a take grabs 2-3 units at once
    straddle_rate: float           # probability that the item rests across two adjacent plates
    near_equal_focus: float        # probability of picking a SKU with a near-equal-weight twin
    duration_s: tuple[float, float] = (20.0, 54.0)  # target scenario length [s]


LEVELS = {
    0: Difficulty(0, 1, (1, 2), (1, 3), 0.0, 0.0, 0.0, 0.0, 0.0),
    1: Difficulty(1, 1, (1, 3), (1, 4), 0.15, 0.0, 0.1, 0.0, 0.25),
    2: Difficulty(2, 2, (2, 3), (2, 4), 0.2, 0.1, 0.15, 0.1, 0.5),
    3: Difficulty(3, 3, (2, 4), (2, 5), 0.3, 0.25, 0.25, 0.2, 0.75),
}


def difficulty(level: int, max_concurrent: int | None = None) -> Difficulty:
    """The knobs of a level; ``max_concurrent`` overrides the level's concurrency."""
    if level not in LEVELS:
        raise ValueError(f'level {level} is not one of {sorted(LEVELS)}')
    d = LEVELS[level]
    if max_concurrent is not None:
        if max_concurrent < 1:
            raise ValueError(f'max_concurrent must be >= 1, got {max_concurrent}')
        d = dataclasses.replace(d, max_concurrent=max_concurrent)
    return d


def near_equal_skus(store: Store, rel: float = NEAR_EQUAL_REL) -> set[str]:
    """SKUs on the planogram whose unit weight is within ``rel`` of another planogram SKU."""
    skus = sorted({e.sku for e in store.planogram.values()})
    grams = {s: store.catalog[s].unit_grams for s in skus}
    return {a for a in skus for b in skus
            if a != b and abs(grams[a] - grams[b]) <= rel * max(grams[a], grams[b])}


class _World:
    """Inventory and plate timelines while a scenario is being built (any insertion order)."""

    def __init__(self, store: Store):
        self.store = store
        self.initial = {pid: Counter({e.sku: e.initial_units})
                        for pid, e in store.planogram.items()}
        self.plate_actions: dict[str, list[Action]] = defaultdict(list)  # by plate (primary)
        self.plate_times: dict[str, list[float]] = defaultdict(list)     # incl. straddle
        self.spots = {pid: standing_spot(store, pid)[0] for pid in store.plates}
        self.stays: list[tuple[str, str, float]] = []   # (shopper, plate, t_s) of every action

    def spot_free(self, shopper: str, plate: str, t_s: float) -> bool:
        """No other shopper stands within SPOT_CLEARANCE_M of this plate's standing spot while
        this shopper is there (two people cannot stand in one place)."""
        here = self.spots[plate]
        for other, pid, t in self.stays:
            if other != shopper and abs(t - t_s) < STAY_S \
                    and float(np.linalg.norm(self.spots[pid] - here)) < SPOT_CLEARANCE_M:
                return False
        return True

    def spacing_ok(self, plates, t_s: float) -> bool:
        return all(abs(t - t_s) >= MIN_PLATE_GAP_S + 0.05
                   for pid in plates for t in self.plate_times[pid])

    def feasible(self, action: Action) -> bool:
        """Would the plate's inventory stay within 0..capacity at every instant?"""
        store = self.store
        acts = sorted(self.plate_actions[action.plate] + [action], key=lambda a: a.t_s)
        units = Counter(self.initial.get(action.plate, Counter()))
        entry = store.planogram.get(action.plate)
        cap_g = store.plate(action.plate).load_cell.capacity_grams
        for a in acts:
            units[a.sku] += a.quantity if a.kind == 'return' else -a.quantity
            if units[a.sku] < 0:
                return False
            if entry is not None and a.sku == entry.sku and units[a.sku] > entry.capacity_units:
                return False
            if sum(store.catalog[k].unit_grams * n for k, n in units.items()) > cap_g:
                return False
        return True

    def add(self, action: Action, shopper: str = '') -> None:
        self.stays.append((shopper, action.plate, action.t_s))
        self.plate_actions[action.plate].append(action)
        for pid in action.plates:
            self.plate_times[pid].append(action.t_s)


def _pick_take(rng: random.Random, world: _World, diff: Difficulty, near: set[str],
               time_for, shopper: str = '') -> Action | None:
    """A feasible take; ``time_for(plate)`` is when the shopper can reach that plate."""
    store = world.store
    plates = sorted(store.planogram)
    focus = [p for p in plates if store.planogram[p].sku in near]
    pool = focus if focus and rng.random() < diff.near_equal_focus else plates
    for _ in range(20):
        pid = rng.choice(pool)
        t_s = time_for(pid)
        sku = store.planogram[pid].sku
        qty = rng.choice((2, 3)) if rng.random() < diff.multi_item_rate else 1
        straddle = None
        if qty == 1 and rng.random() < diff.straddle_rate:
            adj = sorted(store.adjacent_plates(pid))
            straddle = rng.choice(adj) if adj else None
        for q in sorted({qty, 1}, reverse=True):
            a = Action(t_s=t_s, kind='take', plate=pid, sku=sku, quantity=q, straddle=straddle)
            if world.spacing_ok(a.plates, t_s) and world.spot_free(shopper, pid, t_s) \
                    and world.feasible(a):
                return a
    return None


def _pick_return(rng: random.Random, world: _World, diff: Difficulty, held: Counter,
                 time_for, shopper: str = '') -> Action | None:
    store = world.store
    skus = sorted(s for s, n in held.items() if n > 0)
    if not skus:
        return None
    sku = rng.choice(skus)
    qty = held[sku] if held[sku] > 1 and rng.random() < diff.multi_item_rate else 1
    homes = sorted(p for p, e in store.planogram.items() if e.sku == sku)
    if rng.random() < diff.wrong_plate_return_rate or not homes:
        candidates = sorted(p for p in store.plates if p not in homes)
    else:
        candidates = homes
    rng.shuffle(candidates)
    for pid in candidates[:10]:
        t_s = time_for(pid)
        a = Action(t_s=t_s, kind='return', plate=pid, sku=sku, quantity=qty)
        if world.spacing_ok(a.plates, t_s) and world.spot_free(shopper, pid, t_s) \
                and world.feasible(a):
            return a
    return None


def generate(store: Store, seed: int, level: int = 0, *, max_concurrent: int | None = None,
             name_prefix: str = 'acct') -> Scenario:
    """One scenario for ``store``, fully determined by ``seed``, ``level`` and the overrides."""
    diff = difficulty(level, max_concurrent)
    rng = random.Random(f'store_sim.generator/{store.id}/{seed}/{level}/{diff.max_concurrent}')
    near = near_equal_skus(store)
    world = _World(store)
    walkways = Walkways(store)
    spots = world.spots
    target_end_s = rng.uniform(*diff.duration_s)
    n_shoppers = rng.randint(*diff.shoppers)
    shoppers: list[Shopper] = []
    last_enter_s = -10.0
    exits: list[float] = []
    for k in range(n_shoppers):
        # enter when fewer than max_concurrent shoppers are inside, >= 2 s after the last entry
        enter_s = max(1.0 if k == 0 else 0.0, last_enter_s + rng.uniform(2.0, 6.0))
        inside = sorted(e for e in exits if e > enter_s)
        if len(inside) >= diff.max_concurrent:
            enter_s = inside[len(inside) - diff.max_concurrent] + rng.uniform(1.0, 3.0)
        if enter_s > target_end_s - 12.0 and k > 0:
            break
        last_enter_s = enter_s
        sid = f'{name_prefix}-{seed % 10000:04d}-{k + 1}'
        held: Counter = Counter()
        actions: list[Action] = []
        here = gate_center(store, 'entrance')     # where the shopper stands
        t = enter_s + rng.uniform(3.0, 5.0)      # earliest next action, before walking there
        ready = enter_s + 0.8                    # when the shopper can start walking
        want = rng.randint(*diff.actions)
        tries = 0
        while len(actions) < want and tries < 40 and (not actions or t < target_end_s - 6.0):
            tries += 1

            def time_for(pid, here=here, t=t, ready=ready):
                walk_s = walkways.length_m(here, spots[pid]) / MAX_WALK_SPEED_MPS
                return round(max(t, ready + walk_s + ACTION_OVERHEAD_S), 2)
            if any(held.values()) and rng.random() < diff.put_back_rate:
                a = _pick_return(rng, world, diff, held, time_for, sid)
            else:
                a = _pick_take(rng, world, diff, near, time_for, sid)
            if a is None:
                t += 0.5
                continue
            world.add(a, sid)
            actions.append(a)
            held[a.sku] += a.quantity if a.kind == 'take' else -a.quantity
            here, ready = spots[a.plate], a.t_s
            t = a.t_s + rng.uniform(2.0, 5.0)
        last_t = actions[-1].t_s if actions else enter_s
        walk_out_s = walkways.length_m(here, gate_center(store, 'exit')) / MAX_WALK_SPEED_MPS
        exit_s = round(max(last_t + max(rng.uniform(3.0, 5.0), walk_out_s + 1.0),
                           enter_s + 6.0), 2)
        # keep exit scans >= 2 s apart too
        while any(abs(exit_s - e) < 2.0 for e in exits):
            exit_s = round(exit_s + 2.0, 2)
        exits.append(exit_s)
        shoppers.append(Shopper(id=sid, enter_s=round(enter_s, 2), exit_s=exit_s,
                                actions=actions))
    duration_s = round(max(s.exit_s for s in shoppers) + rng.uniform(2.0, 4.0), 2)
    scenario = Scenario(store=store.id, seed=seed, duration_s=max(duration_s, 20.0),
                        shoppers=shoppers,
                        meta={'generator': 'store_sim.generator', 'level': level,
                              'max_concurrent': diff.max_concurrent})
    validate(scenario, store, f'<generated seed {seed}>')
    return scenario


def main(args=None) -> int:
    parser = argparse.ArgumentParser(prog='generate_scenarios', description=__doc__.split('\n')[0])
    parser.add_argument('--store', required=True, help='store description YAML')
    parser.add_argument('--count', type=int, default=20, help='number of scenarios')
    parser.add_argument('--seed', type=int, default=1000, help='seed of the first scenario; '
                                                               'the others use seed+1, ...')
    parser.add_argument('--level', type=int, default=0, choices=sorted(LEVELS),
                        help='difficulty level')
    parser.add_argument('--max-concurrent', type=int, default=None,
                        help='override the level\'s maximum number of shoppers inside at once')
    parser.add_argument('--out', required=True, help='output directory (one YAML per scenario)')
    ns = parser.parse_args(args)
    try:
        store = load_store(ns.store)
    except StoreConfigError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    out = pathlib.Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(ns.count):
        seed = ns.seed + i
        sc = generate(store, seed, ns.level, max_concurrent=ns.max_concurrent)
        path = out / f'{store.id}_l{ns.level}_s{seed}.yaml'
        save_scenario(sc, path)
        n_actions = sum(len(s.actions) for s in sc.shoppers)
        print(f'{path}: {len(sc.shoppers)} shoppers, {n_actions} actions, '
              f'{sc.duration_s:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
