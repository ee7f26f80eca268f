"""Generator: deterministic per seed, and every constraint holds over many seeds and levels."""
import itertools
import pathlib

import pytest

from store_common.description import load_store
from store_sim import generator
from store_sim.generator import difficulty, generate, LEVELS, near_equal_skus
from store_sim.scenario import load_scenario, MIN_PLATE_GAP_S, validate

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
SEEDS = range(40)


def max_inside(sc) -> int:
    edges = sorted([(s.enter_s, 1) for s in sc.shoppers] + [(s.exit_s, -1) for s in sc.shoppers])
    n = best = 0
    for _, d in edges:
        n += d
        best = max(best, n)
    return best


def test_same_seed_same_scenario_different_seed_different():
    for level in LEVELS:
        a = generate(STORE, 1234, level).to_dict()
        assert a == generate(STORE, 1234, level).to_dict()
        assert a != generate(STORE, 1235, level).to_dict()


def test_generation_ignores_global_random_state():
    import random

    import numpy as np
    random.seed(1)
    np.random.seed(1)
    a = generate(STORE, 77, 2).to_dict()
    random.seed(2)
    np.random.seed(2)
    assert generate(STORE, 77, 2).to_dict() == a


@pytest.mark.parametrize('level', sorted(LEVELS))
def test_constraints_hold_over_many_seeds(level):
    knobs = difficulty(level)
    for seed in SEEDS:
        sc = generate(STORE, seed, level)
        validate(sc, STORE)                         # inventory, spacing, holdings, adjacency
        assert 20.0 <= sc.duration_s <= 60.0
        assert 1 <= len(sc.shoppers) <= knobs.shoppers[1]
        assert max_inside(sc) <= knobs.max_concurrent
        enters = sorted(s.enter_s for s in sc.shoppers)
        exits = sorted(s.exit_s for s in sc.shoppers)
        assert all(b - a >= 2.0 for a, b in zip(enters, enters[1:]))
        assert all(b - a >= 2.0 - 1e-9 for a, b in zip(exits, exits[1:]))
        all_actions = []
        for s in sc.shoppers:
            assert s.actions, 'every generated shopper does something'
            assert s.actions[0].t_s - s.enter_s >= 3.0     # walk from the entrance
            assert s.exit_s - s.actions[-1].t_s >= 3.0     # walk to the exit
            all_actions += s.actions
        by_plate = {}
        for a in all_actions:
            for pid in a.plates:
                by_plate.setdefault(pid, []).append(a.t_s)
        for times in by_plate.values():
            times.sort()
            assert all(b - a >= MIN_PLATE_GAP_S for a, b in zip(times, times[1:]))
        if level == 0:
            assert all(a.kind == 'take' and a.quantity == 1 and a.straddle is None
                       for a in all_actions)


def test_harder_levels_use_their_knobs():
    def stats(level):
        acts = [a for seed in range(60) for s in generate(STORE, seed, level).shoppers
                for a in s.actions]
        takes = [a for a in acts if a.kind == 'take']
        near = near_equal_skus(STORE)
        homes = {e.sku: pid for pid, e in STORE.planogram.items()}
        return {'returns': sum(a.kind == 'return' for a in acts),
                'wrong_plate': sum(a.kind == 'return' and homes[a.sku] != a.plate for a in acts),
                'multi': sum(a.quantity > 1 for a in acts),
                'straddle': sum(a.straddle is not None for a in acts),
                'near': sum(a.sku in near for a in takes) / len(takes),
                'concurrent': max(max_inside(generate(STORE, s, level)) for s in range(60))}
    s0, s3 = stats(0), stats(3)
    assert s0['returns'] == s0['multi'] == s0['straddle'] == 0
    assert s0['concurrent'] == 1
    assert s3['returns'] > 10 and s3['wrong_plate'] > 0 and s3['multi'] > 5
    assert s3['straddle'] > 5 and s3['concurrent'] >= 2
    assert s3['near'] > 0.7 > 0.6 > s0['near']


def test_max_concurrent_override():
    for seed in SEEDS:
        sc = generate(STORE, seed, 3, max_concurrent=1)
        assert max_inside(sc) == 1
        assert sc.meta['max_concurrent'] == 1
    with pytest.raises(ValueError):
        difficulty(2, 0)


def test_near_equal_skus_of_demo_catalog():
    near = near_equal_skus(STORE)
    assert {'COLA-330', 'LEMON-330', 'CHOC-DARK', 'CHOC-MILK', 'CHOC-NUT'} <= near
    assert 'GUM-MINT' not in near and 'APPLE' not in near   # 25 vs 26 g is 3.8 %


def test_cli_writes_loadable_scenarios(tmp_path, capsys):
    out = tmp_path / 'sc'
    assert generator.main(['--store', str(ROOT / 'config' / 'stores' / 'demo.yaml'),
                           '--count', '3', '--seed', '1000', '--level', '2',
                           '--max-concurrent', '1', '--out', str(out)]) == 0
    files = sorted(out.glob('*.yaml'))
    assert len(files) == 3
    for f, seed in zip(files, (1000, 1001, 1002)):
        sc = load_scenario(f, STORE)
        assert sc.to_dict() == generate(STORE, seed, 2, max_concurrent=1).to_dict()


@pytest.mark.parametrize('level', sorted(LEVELS))
def test_shoppers_walk_at_a_human_pace_around_the_gondolas(level):
    """The time between two actions covers the walk between their plates: the rendered shopper
    never moves faster than a brisk walk, never crosses a gondola footprint, and never reaches
    from the spot where another shopper is reaching."""
    import numpy as np
    from store_sim.render import reach_starts, ShopperMotion
    from store_sim.walkways import MAX_WALK_SPEED_MPS
    fast = []
    inside = []
    crowded = []
    for seed in range(12):
        sc = generate(STORE, seed, level)
        reach = reach_starts(STORE, sc, seed)
        motions = [ShopperMotion(STORE, s, i, reach, seed) for i, s in enumerate(sc.shoppers)]
        for t in np.arange(0.0, sc.duration_s, 0.1):
            reaching = [m.pose(float(t))[0] for m in motions
                        if m.present(float(t)) and m.state(float(t))['reaching_plate']]
            crowded += [(seed, float(t)) for a, b in itertools.combinations(reaching, 2)
                        if np.linalg.norm(a - b) < 0.5]
        for s, m in zip(sc.shoppers, motions):
            ts = np.arange(s.enter_s, s.exit_s, 0.1)
            xy = np.array([m.pose(float(t))[0] for t in ts])
            speed = np.linalg.norm(np.diff(xy, axis=0), axis=1) / 0.1
            if speed.max() > MAX_WALK_SPEED_MPS * 1.05:
                fast.append((seed, s.id, float(speed.max())))
            for g in STORE.gondolas:
                c, sn = np.cos(g.yaw_rad), np.sin(g.yaw_rad)
                d = xy - [g.x_m, g.y_m]
                lx, ly = c * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + c * d[:, 1]
                hit = (np.abs(lx) < g.size_m[0] / 2 + 0.1) & (np.abs(ly) < g.size_m[1] / 2 + 0.1)
                if hit.any():
                    inside.append((seed, s.id, g.id, float(ts[hit.argmax()])))
    assert not fast, f'faster than a brisk walk: {fast[:5]}'
    assert not inside, f'walked through a gondola: {inside[:5]}'
    assert not crowded, f'two shoppers reaching from one spot: {crowded[:5]}'
