"""Kill campaign: SIGKILL the cart (and the review node and the drivers) at random moments of
live simulated level-2/3 scenarios, and check that no unit is lost or doubled and that every
receipt revision is right; print the time the cart takes to recover after each kill.

Each scenario runs through the real node graph (``run_store``'s runner, sim mode, the shipped
parameters): simulator -> pseudo-terminals -> drivers -> shelf event nodes -> cart, every node
its own process over DDS. A killer thread SIGKILLs a node every few seconds (the cart mostly,
sometimes again within a second and a half of its restart, during start-up), keeps it down for
0-3 s and starts it again on the same database.

The check is exact, against the same engine code: every gate and shelf event the graph
published (the receipt recorder is never killed and records them) is fed, in stamp order and
without a kill, to a fresh ``CartEngine`` with the cart node's parameters. Its receipts and
review requests must equal the run's: a unit in a reference receipt that the run's lacks is
lost, one more is doubled; a receipt revision whose lines differ from the reference is wrong;
a review whose candidate shoppers differ is wrong. Recovery: from the restart of the cart to
its log line "caught up" (every event stamped before the restart decided).

    bench_kill --seeds 9301:9308 --min-kills 100 --out out/kill

Exits 1 when anything was lost, doubled or wrong (or fewer cart kills than --min-kills).
Needs ``. tools/env.sh``. About 2 minutes per scenario on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time

from store_bringup.graph import build_graph, GraphOptions, load_params_file
from store_bringup.runner import Runner
from store_cart.engine import CartEngine, cart_params_of, CartParams
from store_cart.model import GateEventData
from store_common.description import load_store
from store_shelf.event import HypothesisData, ShelfEventData
from store_sim.evaluator import read_jsonl
from store_sim.generator import generate
from store_sim.scenario import save_scenario

from store_bench.paths import root_or_exit

CAUGHT_UP = re.compile(r'\[(\d+\.\d+)\].*caught up ([\d.]+) s after start')


def _ns(stamp: dict) -> int:
    return int(stamp['sec']) * 1_000_000_000 + int(stamp['nanosec'])


def inputs(run_dir: pathlib.Path) -> tuple[list[GateEventData], list[ShelfEventData]]:
    """The gate and shelf events the graph published, once each."""
    gates = {g['event_id']: GateEventData(g['event_id'], g['gate_id'], int(g['kind']),
                                          g['shopper_id'], _ns(g['header']['stamp']))
             for g in read_jsonl(run_dir / 'gate_events.jsonl')}
    shelves = {}
    for e in read_jsonl(run_dir / 'shelf_events.jsonl'):
        shelves[e['event_id']] = ShelfEventData(
            event_id=e['event_id'], gondola_id=e['gondola_id'], plate_ids=tuple(e['plate_ids']),
            delta_grams=float(e['delta_grams']), start_ns=_ns(e['start_stamp']),
            settled_ns=_ns(e['settled_stamp']),
            hypotheses=tuple(HypothesisData.from_dict(h) for h in e['hypotheses']),
            plate_delta_grams=tuple(float(x) for x in e['plate_delta_grams']),
            noise_grams=float(e['noise_grams']))
    return list(gates.values()), list(shelves.values())


def _receipt_key(r: dict) -> tuple:
    return (tuple(sorted((ln['sku'], int(ln['quantity']), int(ln['status']))
                         for ln in r['lines'])), int(r['total_cents']), int(r['pending_reviews']))


def reference(run_dir: pathlib.Path, store, cart_params: CartParams) -> dict:
    """Receipts and reviews of the recorded inputs through one uninterrupted engine."""
    gates, shelves = inputs(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        engine = CartEngine(os.path.join(tmp, 'ref.sqlite'), store.catalog, store.id,
                            cart_params)
        for g in sorted(gates, key=lambda g: g.stamp_ns):
            engine.on_gate_event(g)
        for e in shelves:
            engine.on_shelf_event(e)
        stamps = [g.stamp_ns for g in gates] + [e.settled_ns for e in shelves]
        engine.tick(max(stamps, default=0) + 10**12)
        # the latest revision of each (receipt_history is by receipt id, then revision)
        keys = {r.receipt_id: _receipt_key(r.to_dict()) for r in engine.receipt_history()}
        reviews = {r.request_id: tuple(sorted(r.shopper_ids))
                   for r in engine.state().open_reviews}
        engine.close()
    return {'receipts': keys, 'reviews': reviews, 'n_inputs': len(gates) + len(shelves)}


def compare(run_dir: pathlib.Path, ref: dict) -> dict:
    revisions: dict[str, dict[int, tuple]] = {}
    for r in read_jsonl(run_dir / 'receipts.jsonl'):
        revisions.setdefault(r['receipt_id'], {})[int(r['revision'])] = _receipt_key(r)
    lost = doubled = wrong_revisions = 0
    for rid, want in ref['receipts'].items():
        got_revs = revisions.get(rid, {})
        got = got_revs[max(got_revs)] if got_revs else ((), 0, 0)
        want_units = {(s, st): q for s, q, st in want[0]}
        got_units = {(s, st): q for s, q, st in got[0]}
        for k in set(want_units) | set(got_units):
            d = got_units.get(k, 0) - want_units.get(k, 0)
            lost += max(0, -d)
            doubled += max(0, d)
        wrong_revisions += sum(1 for v in got_revs.values() if v != want)
    extra = sorted(set(revisions) - set(ref['receipts']))
    missing = sorted(set(ref['receipts']) - set(revisions))
    run_reviews = {}
    for r in read_jsonl(run_dir / 'review_requests.jsonl'):
        run_reviews[r['request_id']] = tuple(sorted(r['shopper_ids']))
    wrong_reviews = sum(1 for k, v in ref['reviews'].items() if run_reviews.get(k) != v)
    wrong_reviews += len(set(run_reviews) - set(ref['reviews']))
    return {'receipts': len(ref['receipts']), 'units_lost': lost, 'units_doubled': doubled,
            'wrong_revisions': wrong_revisions, 'missing_receipts': len(missing),
            'extra_receipts': len(extra), 'reviews': len(ref['reviews']),
            'wrong_reviews': wrong_reviews}


class Killer(threading.Thread):
    """SIGKILLs nodes of a running graph at random moments until stopped. After a cart restart
    it either kills the cart again within 1.5 s (start-up, one time in four) or waits until the
    cart has caught up (at most 20 s), so every other kill has a recovery time."""

    def __init__(self, runner: Runner, rng: random.Random, victims: dict[str, float],
                 cart_log: pathlib.Path):
        super().__init__(daemon=True)
        self.runner, self.rng, self.victims = runner, rng, victims
        self.cart_log = cart_log
        self.stop = threading.Event()
        self.kills: list[dict] = []

    def _caught_up_lines(self) -> int:
        try:
            return len(CAUGHT_UP.findall(self.cart_log.read_text(errors='replace')))
        except OSError:
            return 0

    def run(self) -> None:
        again_soon = False
        while not self.stop.is_set():
            if not again_soon and self.kills and self.kills[-1]['node'] == 'cart':
                deadline = time.monotonic() + 20.0
                while (self._caught_up_lines() <= self.kills[-1]['caught_up_before']
                       and time.monotonic() < deadline and not self.stop.is_set()):
                    time.sleep(0.1)
            if self.stop.wait(self.rng.uniform(0.1, 1.5) if again_soon
                              else self.rng.uniform(0.5, 4.0)):
                return
            label = 'cart' if again_soon else self.rng.choices(
                list(self.victims), weights=list(self.victims.values()))[0]
            node = self.runner.node(label)
            if node.poll() is not None:
                continue
            t_kill = time.time()
            before = self._caught_up_lines()
            self.runner.kill(label, signal.SIGKILL)
            down_s = self.rng.uniform(0.0, 3.0)
            if self.stop.wait(down_s):
                self.runner.restart(label)
                return
            self.runner.restart(label)
            self.kills.append({'node': label, 'kill_s': t_kill, 'restart_s': time.time(),
                               'in_startup': again_soon, 'caught_up_before': before})
            again_soon = label == 'cart' and self.rng.random() < 0.25


def recovery_times(log: pathlib.Path, kills: list[dict]) -> list[float | None]:
    """Seconds from each cart restart to its "caught up" line (None: never)."""
    lines = [(float(m.group(1)), float(m.group(2)))
             for m in CAUGHT_UP.finditer(log.read_text(errors='replace'))] if log.exists() else []
    out = []
    for k in kills:
        later = [t for t, _ in lines if t >= k['restart_s']]
        nxt = [x['restart_s'] for x in kills if x['restart_s'] > k['restart_s']]
        t = min(later) if later else None
        if t is not None and nxt and t > min(nxt):
            t = None      # killed again before it caught up
        out.append(None if t is None else t - k['restart_s'])
    return out


def run_one(seed: int, level: int, out: pathlib.Path, rng: random.Random, env: dict,
            store_path: pathlib.Path, params_path: pathlib.Path) -> dict:
    store = load_store(store_path)
    scenario = generate(store, seed, level)
    run_dir = out / f'{level}-{seed}'
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / 'scenario_in.yaml'
    save_scenario(scenario, path)
    specs = build_graph(store, GraphOptions(mode='sim', params_file=str(params_path),
                                            run_dir=str(run_dir), scenario_file=str(path),
                                            record=True))
    labels = [s.label for s in specs]
    victims = {'cart': 8.0, 'review': 1.0}
    for lb in labels:
        if 'loadcell_driver' in lb or 'gate_driver' in lb:
            victims[lb] = 1.0 / 3
    with open(run_dir / 'runner.log', 'w') as log:
        runner = Runner(specs, run_dir, out=log, env=env)
        killer = Killer(runner, rng, victims, run_dir / 'logs' / 'cart.log')
        t0 = time.monotonic()
        try:
            runner.start()
            killer.start()
            code = runner.wait(timeout_s=scenario.duration_s + 150.0)
        finally:
            killer.stop.set()
            killer.join(timeout=10.0)
            runner.stop()
    wall_s = time.monotonic() - t0
    p = load_params_file(params_path).get('cart', {})
    params = cart_params_of(p)
    result = compare(run_dir, reference(run_dir, store, params))
    # scans the simulator made that no gate driver published: lost while its driver was down
    # (the port is flushed when it opens again, as a real reader's scans fall on the floor
    # while nobody reads) or lost otherwise
    recorded = {(g.shopper_id, g.kind) for g in inputs(run_dir)[0]}
    lost_down = lost_other = 0
    unscanned_exit = set()
    for t in read_jsonl(run_dir / 'ground_truth.jsonl'):
        kind = {'enter': 1, 'exit': 2}.get(t.get('event'))
        if kind is None or (t['shopper_id'], kind) in recorded:
            continue
        t_s = t['stamp_ns'] / 1e9
        down = any(k['node'] == f'gate_driver_{t["gate_id"]}' and
                   k['kill_s'] <= t_s <= k['restart_s'] + 5.0 for k in killer.kills)
        lost_down += down
        lost_other += not down
        if kind == 2:
            unscanned_exit.add(t['shopper_id'])
    result.update(scans_lost_driver_down=lost_down, scans_lost_otherwise=lost_other)
    # a run that ended early (a node died of itself, the recorder timed out) fails, unless the
    # receipts it lacks are those of shoppers whose exit scan was lost while its driver was down
    short = result['receipts'] < len(scenario.shoppers) - len(unscanned_exit)
    result['run_failed'] = int(bool(lost_other) or short or (
        code != 0 and not (code == 3 and unscanned_exit and not short)))
    cart_kills = [k for k in killer.kills if k['node'] == 'cart']
    result.update(seed=seed, level=level, exit_code=code, wall_s=wall_s,
                  shoppers=len(scenario.shoppers), kills=len(killer.kills),
                  cart_kills=len(cart_kills),
                  startup_kills=sum(1 for k in cart_kills if k['in_startup']),
                  other_kills=sorted({k['node'] for k in killer.kills} - {'cart'}),
                  recovery_s=recovery_times(run_dir / 'logs' / 'cart.log', cart_kills),
                  kill_log=killer.kills)
    return result


def seed_list(spec: str) -> list[int]:
    out = []
    for part in spec.split(','):
        a, _, b = part.partition(':')
        out += list(range(int(a), int(b or a) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--store', default=str(root / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--params', default=str(root / 'config' / 'params' / 'store.yaml'),
                    help="the graph's parameters file (the nodes' and the reference cart's)")
    ap.add_argument('--seeds', default='9301:9308', help='scenario seeds, e.g. 9301:9308')
    ap.add_argument('--levels', default='2,3', help='difficulty levels, alternated')
    ap.add_argument('--min-kills', type=int, default=100, help='cart kills to reach at least')
    ap.add_argument('--out', default='out/kill', help='run directories')
    ap.add_argument('--rng', type=int, default=1, help='seed of the kill schedule')
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    levels = [int(x) for x in args.levels.split(',')]
    rng = random.Random(args.rng)
    env = dict(os.environ, ROS_DOMAIN_ID=str(rng.randint(101, 200)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_LOCALHOST_ONLY='0')
    rows = []
    seeds = seed_list(args.seeds)
    i = 0
    while i < len(seeds) or sum(r['cart_kills'] for r in rows) < args.min_kills:
        seed = seeds[i] if i < len(seeds) else seeds[-1] + 1 + i - len(seeds)
        level = levels[i % len(levels)]
        i += 1
        r = run_one(seed, level, out, rng, env, pathlib.Path(args.store),
                    pathlib.Path(args.params))
        rows.append(r)
        rec = [x for x in r['recovery_s'] if x is not None]
        print(f'level {level} seed {seed}: exit {r["exit_code"]}, {r["shoppers"]} shoppers, '
              f'{r["kills"]} kills ({r["cart_kills"]} cart, {r["startup_kills"]} in start-up; '
              f'{", ".join(r["other_kills"]) or "no other node"}), {r["receipts"]} receipts, '
              f'lost {r["units_lost"]}, doubled {r["units_doubled"]}, wrong revisions '
              f'{r["wrong_revisions"]}, missing {r["missing_receipts"]}, wrong reviews '
              f'{r["wrong_reviews"]}/{r["reviews"]}, recovery max '
              f'{max(rec, default=0):.2f} s, {r["wall_s"]:.0f} s', flush=True)
        if i > len(seeds) + 20:
            break
    rec = [x for r in rows for x in r['recovery_s'] if x is not None]
    never = sum(1 for r in rows for x in r['recovery_s'] if x is None)
    tot = {k: sum(r[k] for r in rows) for k in ('kills', 'cart_kills', 'startup_kills',
                                                'receipts', 'units_lost', 'units_doubled',
                                                'wrong_revisions', 'missing_receipts',
                                                'extra_receipts', 'reviews', 'wrong_reviews',
                                                'run_failed', 'scans_lost_driver_down',
                                                'scans_lost_otherwise')}
    print()
    print('| scenarios | kills (cart / in start-up / other) | receipts | units lost | '
          'doubled | wrong revisions | missing receipts | wrong reviews |')
    print('|---|---|---|---|---|---|---|---|')
    print(f'| {len(rows)} | {tot["kills"]} ({tot["cart_kills"]} / {tot["startup_kills"]} / '
          f'{tot["kills"] - tot["cart_kills"]}) | {tot["receipts"]} | {tot["units_lost"]} | '
          f'{tot["units_doubled"]} | {tot["wrong_revisions"]} | {tot["missing_receipts"]} | '
          f'{tot["wrong_reviews"]} of {tot["reviews"]} |')
    if tot['run_failed']:
        print(f'{tot["run_failed"]} runs did not complete (see runner.log in their folder)')
    print(f'gate scans lost while their driver was down: {tot["scans_lost_driver_down"]} (no '
          f'receipt for those shoppers: the cart never saw them leave); lost otherwise: '
          f'{tot["scans_lost_otherwise"]}')
    if rec:
        q = statistics.quantiles(rec, n=20) if len(rec) > 1 else rec * 19
        print(f'cart recovery after a kill (restart -> caught up): p50 '
              f'{statistics.median(rec):.2f} s, p95 {q[18]:.2f} s, max {max(rec):.2f} s over '
              f'{len(rec)} restarts; {never} killed again before catching up')
    failed = (tot['units_lost'] or tot['units_doubled'] or tot['wrong_revisions']
              or tot['missing_receipts'] or tot['extra_receipts'] or tot['wrong_reviews']
              or tot['run_failed'] or tot['cart_kills'] < args.min_kills)
    (out / 'summary.json').write_text(json.dumps({'rows': rows, 'total': tot}, indent=1))
    print('FAILED' if failed else 'OK: nothing lost, doubled or wrong')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
