"""Learning from reviews day over day, in the live graph (console script ``learning_days_live``).

    . tools/env.sh && nice learning_days_live [--days 5] [--per-day 10] [--first-seed 20000] \
        [--arms learning,control] [--start-bars 0.9 0.5] [--target-accuracy 0.99] \
        [--reviewer-delay-s 5] [--trace] [--out out/learning_days_live]

``learning_days``' experiment through the graph ``ros2 launch`` runs instead of the offline
path. Each scenario plays in real time through ``run_store --mode sim --cameras`` (the same
parameters file, started as ``bench_live_graph`` starts it: rendered camera streams, drivers,
the shipped detector, tracker, fusion, shelf nodes, cart, review node), and a simulated reviewer
works the review console over HTTP (:mod:`store_bench.console_reviewer`): it logs in, opens each
review and spot check, and answers from the simulator's truth; the cart applies the answer, and
the run ends once every answer is acknowledged.

* control: every day with the start state (``--start-bars``, or the parameters file's bars; the
  shipped calibration and catalog weights);
* learning: after each day, the store's own learning command over every run's databases so far,
  ``review_learn --db ... --cart-db ... --params ... --out-dir <out>/learning/state`` (the cart's
  bars tuned to ``--target-accuracy``, the fusion's calibration refitted, the weight models),
  and the next day's graph reads the files it wrote (``cart.thresholds_file``,
  ``fusion.calibration_file``, ``shelf_events.weight_models_file``), copied per day to
  ``<out>/learning/day<d>/``.

Days, seeds and levels are ``learning_days``' (:func:`store_bench.learning_days.day_plan`), so
the offline figures of the same scenarios sit beside these. Per day and arm, from each run's
folder (:func:`run_rows`): shelf events, reviews (spot checks apart), the events decided without
review and how many are right (the cart's top shopper and best hypothesis, as
``store_cart.engine.decision_features`` gives them, against the action the simulator published
on ``sim/ground_truth``), receipts exact after review (latest revision). Each finished run keeps
its figures in ``<run>/learning_run.json``, so a stopped experiment resumes where it was.
Writes ``learning_days_live.json`` and ``learning_days_live.png``; the last lines say whether
issue 19's goal is met. Prints figures; it is not a test.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from types import SimpleNamespace

from store_cart.db import CartDb
from store_cart.model import ACTION_TAKE, REASON_NAMES, ReviewRequestData
from store_cart.thresholds import read_thresholds, write_thresholds
from store_common.description import load_store
from store_common.params import load_params_file
from store_fusion.calibration import ece, Platt
from store_review.learning import fused_rows, hindsight_bars
from store_sim.generator import generate
from store_sim.render_cache import ensure_render
from store_sim.scenario import save_scenario

from store_bench.bench_live_graph import detector_text, run_live
from store_bench.console_reviewer import summary_text
from store_bench.learning_days import day_plan, GOAL_ACCURACY, goal_lines, plot, table
from store_bench.live_reach import reach_points
from store_bench.paths import root_or_exit
from store_bench.reviewer_sim import SimulatedReviewer

ARMS = ('control', 'learning')


def _signed(action: int, quantity: int) -> int:
    return int(quantity) if int(action) == ACTION_TAKE else -int(quantity)


def _hyp_key(h: dict | None) -> tuple:
    if h is None or not h.get('sku') or int(h.get('quantity', 0)) <= 0:
        return ('', 0, 0)
    return (h['sku'], int(h['action']), int(h['quantity']))


def run_rows(run_dir: str | pathlib.Path, calibration: Platt | None = None) -> list[dict]:
    """One row per shelf event the cart of a finished run decided: ``p``/``margin`` (what it
    compared with its bars), ``reviewed`` (a review request, not a spot check), ``spot_checked``,
    ``top_right`` (its top shopper and best hypothesis were the simulator's action; for an event
    no action caused, the best hypothesis was "no product"), ``auto_right`` (what the cart did
    without review was the action: its lines from the event, or for a spot check the decision
    the check offered first, which an answer may have corrected since; None for a reviewed
    event), ``confidence`` (``calibration`` of the fusion's raw confidence; NaN without one),
    ``review_reason`` (why the cart asked, ``store_cart.model.REASON_NAMES``; None unasked).
    ``top_right`` is the feature the bars see; ``auto_right`` also has the cart's own
    conditioning (a return goes to the shopper who holds the product)."""
    run = pathlib.Path(run_dir)
    truth = SimulatedReviewer.from_ground_truth(run / 'ground_truth.jsonl')
    db = CartDb(str(run / 'carts.sqlite'))
    try:
        requests = [r['request'] for r in db.decided_reviews()] + db.open_reviews()
        reviewed, checked = {}, {}
        for r in requests:
            req = ReviewRequestData.from_dict(r)
            if req.is_spot_check:
                checked[req.event_id] = req
            else:
                reviewed[req.event_id] = REASON_NAMES.get(req.reason, str(req.reason))
        shopper_of = {s['session_id']: s['shopper_id'] for s in db.sessions()}
        events = dict(db.processed_shelf_events())
        rows = []
        # the features the cart compared with its bars, as review_learn reads them
        for row in fused_rows(db):
            event_id, top = row['event_id'], row['top_shopper']
            ev = events[event_id]
            t = truth.truth_for(SimpleNamespace(event_id=event_id,
                                                stamp_ns=int(ev['settled_ns']),
                                                plate_ids=tuple(ev['plate_ids'])))
            best = _hyp_key(row['best'])
            right = (best == ('', 0, 0) if t is None else
                     top == t.shopper_id and best == (t.sku, int(t.action), int(t.quantity)))
            want = [] if t is None else [(t.shopper_id, t.sku, _signed(t.action, t.quantity))]
            if event_id in reviewed:
                auto = None
            elif event_id in checked:
                c = checked[event_id].candidates[0]
                did = ([(c.shopper_id, c.sku, _signed(c.action, c.quantity))]
                       if c.sku and c.quantity > 0 else [])
                auto = did == want
            else:
                auto = sorted((shopper_of.get(sid, ''), sku, int(q))
                              for sid, sku, q, _ in db.lines_of_source(event_id)) == want
            raw = row['raw_confidence']
            conf = (float(calibration(float(raw))) if calibration is not None and raw is not None
                    else float('nan'))
            rows.append({'event_id': event_id, 'p': row['p'], 'margin': row['margin'],
                         'reviewed': event_id in reviewed, 'spot_checked': event_id in checked,
                         'top_right': bool(right), 'auto_right': auto, 'confidence': conf,
                         'review_reason': reviewed.get(event_id)})
        return rows
    finally:
        db.close()


def day_summary(day: int, arm: str, runs: list[dict], bars: dict) -> dict:
    """``learning_days``' per-day figures (its ``table``, ``goal_lines`` and ``plot`` read
    them) from the day's runs."""
    rows = [r for m in runs for r in m['rows']]
    auto = [r for r in rows if not r['reviewed']]
    reviews = sum(r['reviewed'] for r in rows)
    scored = [(r['confidence'], r['top_right']) for r in rows if not math.isnan(r['confidence'])]
    return {'day': day, 'arm': arm, 'scenarios': len(runs), 'events': len(rows),
            'reviews': reviews, 'review_rate': reviews / len(rows) if rows else 0.0,
            'review_reasons': dict(sorted(Counter(r['review_reason'] for r in rows
                                                  if r['reviewed']).items())),
            'spot_checks': sum(r['spot_checked'] for r in rows), 'unreviewed': len(auto),
            'unreviewed_accuracy': (sum(bool(r['auto_right']) for r in auto) / len(auto)
                                    if auto else 1.0),
            'receipts_exact': sum(m['receipts_exact'] for m in runs),
            'shoppers': sum(m['shoppers'] for m in runs),
            'ece': ece(scored) if scored else float('nan'),
            'hindsight': hindsight_bars(rows, GOAL_ACCURACY),
            'min_confidence': bars['min_confidence'], 'min_margin': bars['min_margin'],
            'exit_codes': [m['exit_code'] for m in runs],
            'wrong_unreviewed': [{'run': m['name'], 'event_id': r['event_id'], 'p': r['p'],
                                  'margin': r['margin']}
                                 for m in runs for r in m['rows']
                                 if not r['reviewed'] and not r['auto_right']]}


def bars_on_every_day(days: list[tuple[tuple[float, float], list[dict]]],
                      bars: tuple[float, float]) -> dict:
    """What ``bars`` (min_confidence, min_margin) would have done to every event of the
    days: ``days`` is [(the bars in force that day, its rows (:func:`run_rows`))]. One
    population for every day's bars, so a fall is the bars', not the day's scenario mix.

    From what the cart did live: an event it reviewed stays reviewed unless its (p, margin)
    clear ``bars``; one it decided without review stays so, except under bars stricter than the
    day's where its (p, margin) fall below them. An unreviewed event is right as scored live
    (``auto_right``), or, for one reviewed live, as its top answer (``top_right``: the cart's
    other rules, such as a return going to the shopper who holds the product, not replayed)."""
    conf, margin = bars
    events = reviewed = right = 0
    for (day_conf, day_margin), rows in days:
        stricter = conf > day_conf or margin > day_margin
        for r in rows:
            events += 1
            clears = r['p'] >= conf and r['margin'] >= margin
            if (r['reviewed'] and not clears) or (not r['reviewed'] and stricter and not clears):
                reviewed += 1
            else:
                right += bool(r['auto_right'] if r['auto_right'] is not None
                              else r['top_right'])
    auto = events - reviewed
    return {'min_confidence': conf, 'min_margin': margin, 'events': events,
            'reviews': reviewed, 'review_rate': reviewed / events if events else 0.0,
            'unreviewed': auto, 'unreviewed_right': right,
            'unreviewed_accuracy': right / auto if auto else 1.0}


def learn(args, env, state: pathlib.Path, day_dir: pathlib.Path, runs: list[pathlib.Path]) -> str:
    """``review_learn`` over ``runs``' databases into ``state``; copies the files to
    ``day_dir``. Returns its output."""
    cmd = ['review_learn', '--store', args.store, '--out-dir', str(state), '--params',
           args.params, '--target-accuracy', str(args.target_accuracy)]
    for r in runs:
        cmd += ['--db', str(r / 'review.sqlite'), '--cart-db', str(r / 'carts.sqlite')]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'review_learn failed ({proc.returncode}): {proc.stderr.strip()}')
    day_dir.mkdir(parents=True, exist_ok=True)
    for name in ('thresholds.yaml', 'calibration.json', 'weight_models.yaml'):
        if (state / name).is_file():
            shutil.copyfile(state / name, day_dir / name)
    (day_dir / 'review_learn.txt').write_text(proc.stdout)
    return proc.stdout


def arm_sets(files: dict[str, str]) -> list[str]:
    """``run_store --set`` overrides that make the graph read an arm's files."""
    out = [f'cart.thresholds_file={files["thresholds"]}']
    if files.get('calibration'):
        out.append(f'fusion.calibration_file={files["calibration"]}')
    if files.get('weight_models'):
        out.append(f'shelf_events.weight_models_file={files["weight_models"]}')
    return out


def one_run(args, env, store, seed: int, level: int, run_dir: pathlib.Path,
            files: dict[str, str]) -> dict:
    """One scenario through the live graph with the reviewer; its figures (kept in
    ``<run_dir>/learning_run.json``: a finished run is not played again)."""
    done = run_dir / 'learning_run.json'
    cal = Platt.load(files['calibration']) if files.get('calibration') else None
    if done.is_file():       # played already: scored again from its folder (the same rule)
        doc = json.loads(done.read_text())
        doc['rows'] = run_rows(run_dir, cal)
        return doc
    if run_dir.exists():       # a run stopped half way: its records would be appended to
        for p in run_dir.iterdir():
            if p.name != 'cameras':
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario_path = run_dir.parent / f'scenario_{run_dir.name}.yaml'
    save_scenario(generate(store, seed, level), scenario_path)
    ensure_render(args.store, str(scenario_path), run_dir / 'cameras', 10.0,
                  [c.id for c in store.cameras], jobs=2, keep=args.per_day + 2,
                  log=lambda _: None)
    live_args = SimpleNamespace(store=args.store, timeout=args.timeout,
                                set=list(args.set) + arm_sets(files),
                                reviewer_delay_s=args.reviewer_delay_s, trace=args.trace,
                                plates_px=args.plates_px, reach_px=40.0)
    m = run_live(live_args, env, scenario_path, run_dir, cameras=True)
    doc = {'name': run_dir.name, 'seed': seed, 'level': level, 'exit_code': m['exit_code'],
           'receipts_exact': m['receipts_exact'], 'shoppers': m['shoppers'],
           'wall_s': m['wall_s'], 'reviewer': m.get('reviewer'), 'machine': m['machine'],
           'detector': m.get('detector'), 'files': files, 'rows': run_rows(run_dir, cal)}
    done.write_text(json.dumps(doc, indent=1))
    # the rendered frames are the bulk of a run folder and can be rendered again
    shutil.rmtree(run_dir / 'cameras', ignore_errors=True)
    return doc


def main(argv: list[str] | None = None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--store', default=str(root / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--params', default=str(root / 'config' / 'params' / 'store.yaml'))
    ap.add_argument('--days', type=int, default=5)
    ap.add_argument('--per-day', type=int, default=10)
    ap.add_argument('--first-seed', type=int, default=20000)
    ap.add_argument('--arms', default='learning,control',
                    help='comma list of control, learning (default: both)')
    ap.add_argument('--start-bars', type=float, nargs=2, metavar=('MIN_CONF', 'MIN_MARGIN'),
                    help="bars both arms start from (default: the parameters file's)")
    ap.add_argument('--target-accuracy', type=float, default=GOAL_ACCURACY)
    ap.add_argument('--reviewer-delay-s', type=float, default=5.0)
    ap.add_argument('--timeout', type=float, default=420.0, help='per live run [s]')
    ap.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                    help='passed to every run_store (both arms)')
    ap.add_argument('--trace', action='store_true',
                    help="write each run's tracker steps to <run>/tracker_trace.jsonl "
                    '(replay the days offline with bench_vision_replay)')
    ap.add_argument('--out', default=str(root / 'out' / 'learning_days_live'))
    args = ap.parse_args(argv)
    arms = sorted({a for a in args.arms.split(',') if a}, key=lambda a: a != 'learning')
    if not arms or any(a not in ARMS for a in arms):
        ap.error(f'--arms: comma list of {", ".join(ARMS)}, got {args.arms!r}')
    if args.days < 1 or args.per_day < 1:
        ap.error('--days and --per-day must be >= 1')
    store = load_store(args.store)
    args.plates_px = reach_points(store, args.params)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = env.get('ROS_DOMAIN_ID') or str(random.randint(101, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

    # the start state: bars in a thresholds file (the cart reads it as a learned one), the
    # parameters file's calibration, no weight models
    cart = load_params_file(args.params).get('cart', {})
    bars = ({'min_confidence': args.start_bars[0], 'min_margin': args.start_bars[1]}
            if args.start_bars else
            {'min_confidence': float(cart.get('fused_min_confidence', 0.5)),
             'min_margin': float(cart.get('min_margin', 0.2))})
    start_dir = out / 'start'
    write_thresholds(bars, start_dir / 'thresholds.yaml')
    start_files = {'thresholds': str(start_dir / 'thresholds.yaml')}
    cal = str(load_params_file(args.params).get('fusion', {}).get('calibration_file', '') or '')
    if cal:
        start_files['calibration'] = str(
            pathlib.Path(cal) if pathlib.Path(cal).is_absolute()
            else (pathlib.Path(args.params).parent / cal).resolve())
    state = out / 'learning' / 'state'
    state.mkdir(parents=True, exist_ok=True)
    files = {arm: dict(start_files) for arm in ARMS}
    learned_runs: list[pathlib.Path] = []
    rows_by_day: dict[int, list[dict]] = {}
    days = []
    t0 = time.monotonic()
    for day, scenarios in enumerate(day_plan(args.days, args.per_day, args.first_seed)):
        played: dict[str, list] = {}
        for arm in arms:
            same = [a for a in played if files[a] == files[arm]]
            if same:
                # the arms are in the same state (day 0): the same runs stand for both
                played[arm] = played[same[0]]
                th = read_thresholds(files[arm]['thresholds'])
                days.append({**day_summary(day, arm, played[arm], th), 'same_runs_as': same[0]})
                continue
            runs = played[arm] = []
            for seed, level in scenarios:
                run_dir = out / f'day{day}' / arm / f'L{level}_s{seed}'
                m = one_run(args, env, store, seed, level, run_dir, files[arm])
                runs.append(m)
                auto = [r for r in m['rows'] if not r['reviewed']]
                print(f'day {day} {arm} {run_dir.name}: exit {m["exit_code"]}, '
                      f'{m["receipts_exact"]}/{m["shoppers"]} exact, '
                      f'{sum(r["reviewed"] for r in m["rows"])} reviews of {len(m["rows"])} '
                      f'events, {sum(bool(r["auto_right"]) for r in auto)}/{len(auto)} unreviewed '
                      f'right, {summary_text(m["reviewer"])}, {detector_text(m.get("detector"))}, '
                      f'{m["wall_s"]:.0f} s', flush=True)
                if arm == 'learning':
                    learned_runs.append(run_dir)
                    rows_by_day.setdefault(day, []).extend(m['rows'])
            th = read_thresholds(files[arm]['thresholds'])
            days.append(day_summary(day, arm, runs, th))
        if 'learning' in arms:
            day_dir = out / 'learning' / f'day{day}'
            # the bars in force stay where labels are too few (review_learn keeps the state
            # folder's): the day's own, also when a stopped experiment is resumed
            shutil.copyfile(files['learning']['thresholds'], state / 'thresholds.yaml')
            text = learn(args, env, state, day_dir, learned_runs)
            print(f'day {day} review_learn over {len(learned_runs)} runs:\n  '
                  + text.strip().replace('\n', '\n  '), flush=True)
            files['learning'] = {'thresholds': str(day_dir / 'thresholds.yaml'),
                                 'calibration': str(day_dir / 'calibration.json'),
                                 'weight_models': str(day_dir / 'weight_models.yaml')}
        doc = {'args': {k: v for k, v in vars(args).items() if k != 'plates_px'},
               'wall_s': time.monotonic() - t0, 'days': days}
        (out / 'learning_days_live.json').write_text(json.dumps(doc, indent=1))
    print(table(days))
    for d in days:
        why = ', '.join(f'{n} {k}' for k, n in d.get('review_reasons', {}).items()) or 'none'
        print(f'day {d["day"]} {d["arm"]}: reviews by the cart\'s reason: {why}')
    if 'learning' in arms:
        # each day's bars, and the ones learned after the last day, on every day's events
        learn_days = [(d['day'], (d['min_confidence'], d['min_margin']))
                      for d in days if d['arm'] == 'learning']
        played_days = [(bars, rows_by_day[day]) for day, bars in learn_days]
        last = read_thresholds(files['learning']['thresholds'])
        steps = [(f'day {day}', bars) for day, bars in learn_days]
        steps.append(('after the last day', (last['min_confidence'], last['min_margin'])))
        doc['bars_on_every_day'] = []
        print(f'each day\'s bars on the events of all {len(played_days)} days:')
        for name, bars in steps:
            f = {'bars_of': name, **bars_on_every_day(played_days, bars)}
            doc['bars_on_every_day'].append(f)
            print(f'  bars of {name} ({bars[0]:.2f} / {bars[1]:.2f}): {f["reviews"]} of '
                  f'{f["events"]} events reviewed ({f["review_rate"]:.1%}), '
                  f'{f["unreviewed_right"]}/{f["unreviewed"]} unreviewed right '
                  f'({f["unreviewed_accuracy"]:.1%})')
    lines = goal_lines(days) if 'learning' in arms else ['goal: no learning arm was run']
    print('\n'.join(lines))
    doc['goal'] = lines
    (out / 'learning_days_live.json').write_text(json.dumps(doc, indent=1))
    start = ('bars %g / %g' % tuple(args.start_bars)) if args.start_bars else 'shipped files'
    plot(days, out / 'learning_days_live.png', start=start,
         title='Learning from reviews in the live graph, levels 2-3')
    print(f'written {out / "learning_days_live.json"}, {out / "learning_days_live.png"} '
          f'({time.monotonic() - t0:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
