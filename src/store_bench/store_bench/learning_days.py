"""Learning from reviews with cameras and crowds, day over day (console script ``learning_days``).

    . tools/env.sh && nice learning_days [--days 5] [--per-day 10] [--first-seed 20000] \
        [--gt-cache out/learning_days/gt] [--target-accuracy 0.99] [--spot-check-fraction F] \
        [--classifier] [--out out/learning_days]

Day d is ``--per-day`` generated scenarios, levels 2 and 3 alternating (two or three shoppers
inside at once), seeds ``first_seed + 100 * d + k`` (never used to tune anything). Each runs
through the offline camera path, the pure modules the live graph runs
(:mod:`store_bench.fusion_offline`): physics -> the shelf node's ``GondolaPipeline`` (with the
weight overlay in force) -> shelf events; rendered ground-truth boxes -> the simcam detection
model (the shipped detector's measured figures) -> ``ShopperTracker``; ``EventFuser``
(:func:`fuse_offline`, with the Platt calibration in force) -> one ``CartEngine`` with the fused
cart's thresholds (``config/params/store.yaml``: ``fused_min_confidence``, ``min_margin``) and
the shopper hint as the cart node converts it. A :class:`SimulatedReviewer` answers every
review request from the scenario's truth after its delay, the cart's spot checks too: the
share ``spot_check_fraction`` (the parameters file's, or ``--spot-check-fraction``) of the
events decided without review, drawn by the cart engine as the cart node draws them (labels
above the thresholds; an answer that differs corrects the cart, after the decision was
counted).

Two arms over the same days, seeds and detector noise:

* control: the shipped calibration, thresholds and catalog weights, never changed;
* learning: after each day, from every decided event so far (reviews and spot checks, the
  reviewer's answers, never the simulator's truth): Platt scaling of the fused confidence
  (``learning.refit_fusion_calibration``), per-SKU weight models
  (``learning.fit_weight_models``) and the cart's thresholds re-tuned to ``--target-accuracy``
  (``learning.tune_fused_bars`` on the features the fused cart thresholds:
  ``store_cart.engine.decision_features``; ``review_learn --cart-db`` runs the same step on a
  store's cart database). The files are written into ``<out>/learning/day<d>/`` as the nodes
  read them (``calibration.json`` for the fusion node's ``calibration_file``,
  ``thresholds.yaml`` for the cart's ``thresholds_file``, ``weight_models.yaml`` for the shelf
  node's ``weight_models_file``) and loaded back from there with the nodes' own loaders for the
  next day. With ``--classifier`` the hand/product classifier is also fine-tuned on the day's
  reviewed crops (``store_bench.review_crops.learn_classifier``) and the detector figures it
  returns drive the next day's detection model.

Per day and arm: shelf events, review requests and rate, spot checks, events decided without review
and their accuracy against the truth, receipts exact after review (latest revision), the ECE of
the fused confidence, the thresholds in force, and the bars chosen with hindsight
(``store_review.learning.hindsight_bars``: the least review rate of any bars on the tuner's grid
with 99 % of the events above them right; ``hind%`` in the table), the floor the bars' share of
the review rate cannot go under with these features, whatever a tuner learns. Writes
``learning_days.json`` and ``learning_days.png`` under ``--out``. Goal (issue 19): the learning
arm's review rate falls to at most 2 % while at least 99 % of the events decided without review
are right; the last lines say "goal met" or "goal missed" with the figures. Prints
figures; it is not a test.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from store_cart.engine import (CartEngine, CartParams, cart_params_of, decision_features,
                               fused_params)
from store_cart.model import (ACTION_TAKE, CartUpdateData, ReceiptData,
                              ReviewRequestData, SOURCE_REVIEW)
from store_cart.thresholds import read_thresholds, write_thresholds
from store_common.description import load_store
from store_common.params import load_params_file
from store_fusion.calibration import ece, Platt
from store_fusion.geometry import StoreGeometry
from store_fusion.params import load_pipeline_params, PipelineParams
from store_review.learning import (answer_matches, CREDIBILITY, fit_weight_models,
                                   hindsight_bars, make_example, refit_fusion_calibration,
                                   tune_fused_bars, write_weight_models)
from store_shelf.event import ShelfEventData
from store_shelf.hypotheses import load_weight_overlay
from store_shelf.pipeline import load_params as load_shelf_params, PipelineParams as ShelfParams
from store_sim.evaluator import evaluate
from store_sim.generator import generate
from store_sim.physics import PhysicsParams

from store_bench.fusion_offline import (_gates, action_code, fuse_offline, NS, run_tracking,
                                        shelf_events, T0_NS, truth_of_event)
from store_bench.reviewer_sim import SimulatedReviewer
from store_bench.simcam import (DetectionModel, DetectorStats, load_or_render_truth,
                                measured_stats, shopper_colors, truth_cache_path)

ROOT = pathlib.Path(__file__).resolve().parents[3]
ARMS = ('control', 'learning')
GOAL_REVIEW_RATE = 0.02
GOAL_ACCURACY = 0.99


def _hyp_key(h) -> tuple:
    return (h.sku, int(h.action), int(h.quantity)) if h is not None else ('', 0, 0)


# --- one arm's state: what the nodes would load -----------------------------------------------
@dataclass
class ArmState:
    cart: CartParams                    # the fused cart's thresholds in force
    calibration: Platt                  # the fusion node's calibration_file
    overlay: dict | None = None         # the shelf node's weight_models_file
    stats: DetectorStats | None = None  # the detector (simcam) figures
    classifier: dict | None = None      # learn_classifier's last result
    files: dict = field(default_factory=dict)
    shipped_calibration: Platt | None = None  # the anchor of every refit (None: calibration)


@dataclass
class ScenarioResult:
    seed: int
    level: int
    rows: list = field(default_factory=list)       # one per shelf event
    requests: list = field(default_factory=list)
    receipts: list = field(default_factory=list)
    examples: list = field(default_factory=list)   # learning.make_example, reviews and checks
    decided: list = field(default_factory=list)    # learn_classifier's contract
    spot_checks: int = 0
    metrics: dict = field(default_factory=dict)    # store_sim.evaluator.evaluate


def run_scenario(store, geom, scenario, history, pipe: PipelineParams, state: ArmState,
                 seed: int, *, physics: PhysicsParams | None = None,
                 reviewer_delay_s: float = 20.0, spot_check_fraction: float | None = None,
                 events: list[ShelfEventData] | None = None,
                 shelf_params: ShelfParams | None = None) -> ScenarioResult:
    """One scenario through shelf events -> fusion -> fused cart -> simulated reviewer.
    ``events``: the scenario's shelf events when the caller has them for ``state.overlay``;
    ``shelf_params``: the shelf node's parameters (default: the launched node's)."""
    level = int(scenario.meta.get('level', -1))
    out = ScenarioResult(seed, level)
    if events is None:
        events = shelf_events(store, scenario, physics_params=physics, overlay=state.overlay,
                              pipeline_params=shelf_params)
    results = fuse_offline(geom, events, history, len(store.catalog.products), pipe.fusion,
                           pipe.joint, calibration=state.calibration)
    cart = (state.cart if spot_check_fraction is None
            else replace(state.cart, spot_check_fraction=spot_check_fraction))
    engine = CartEngine(':memory:', store.catalog, store.id, cart)
    reviewer = SimulatedReviewer.from_scenario(scenario, T0_NS, delay_s=reviewer_delay_s,
                                               seed=seed)
    gates = _gates(store, scenario)
    stays = {}
    for g in gates:
        stays.setdefault(g.shopper_id, []).append(g.stamp_ns)
    fused = {e.event_id: ShelfEventData(
        **{**e.__dict__, 'hypotheses': tuple(results[e.event_id].hypotheses)}) for e in events}
    updates: list[CartUpdateData] = []
    due: list = []
    labels: dict[str, dict] = {}       # event id -> its example (a review's or a spot check's)

    def handle(outs, now_ns):
        for o in outs:
            if isinstance(o, ReceiptData):
                out.receipts.append(o)
            elif isinstance(o, ReviewRequestData):
                if o.is_spot_check:
                    out.spot_checks += 1
                else:
                    out.requests.append(o)
                due_ns, decision, _ok = reviewer.answer(o, now_ns)
                due.append((due_ns, decision, o))
            elif isinstance(o, CartUpdateData):
                updates.append(o)

    def label(request, decision):
        ev = fused.get(request.event_id)
        ex = make_example(request, ev.to_dict() if ev else None, decision)
        out.examples.append(ex)
        labels[request.event_id] = ex
        out.decided.append({'scenario_seed': seed, 'level': level,
                            'stamp_ns': request.stamp_ns, 'plate_ids': list(request.plate_ids),
                            'sku': decision.sku, 'shopper_id': decision.shopper_id})

    pending = sorted(events, key=lambda e: (e.settled_ns, e.event_id))
    end = T0_NS + int((scenario.duration_s + reviewer_delay_s + 10.0) * NS)
    for now in range(T0_NS, end, NS // 10):
        while pending and pending[0].settled_ns <= now:
            ev = pending.pop(0)
            # the hint as the cart node converts a FusedShelfEvent: None without candidates
            res = results[ev.event_id]
            handle(engine.on_shelf_event(fused[ev.event_id], shopper_hint=res.hint or None,
                                         raw_confidence=res.raw_confidence), now)
        while gates and gates[0].stamp_ns <= now:
            handle(engine.on_gate_event(gates.pop(0)), now)
        for item in sorted([d for d in due if d[0] <= now], key=lambda d: d[0]):
            due.remove(item)
            _, decision, request = item
            handle(engine.on_review_decision(decision), now)
            label(request, decision)
        handle(engine.tick(now), now)
    engine.close()

    reviewed = {r.event_id for r in out.requests}
    for ev in events:
        res = results[ev.event_id]
        present = sorted(s for s, st in stays.items()
                         if st[0] <= ev.start_ns and (len(st) < 2 or ev.start_ns <= st[1]))
        p, margin, top = decision_features(res.hint or None, present,
                                           [h.posterior for h in res.hypotheses])
        best = res.hypotheses[0] if res.hypotheses else None
        truth = truth_of_event(scenario, ev)
        t_key = ((truth[1].sku, action_code(truth[1]), truth[1].quantity) if truth else ('', 0, 0))
        t_shopper = truth[0] if truth else ''
        ups = [u for u in updates if u.event_id == ev.event_id and u.source != SOURCE_REVIEW]
        if truth is None:
            auto_ok = not ups
        else:
            want = t_key[2] if t_key[1] == ACTION_TAKE else -t_key[2]
            auto_ok = (len(ups) == 1 and ups[0].shopper_id == t_shopper
                       and ups[0].sku == t_key[0] and ups[0].quantity_delta == want)
        lab = labels.get(ev.event_id)
        ans = lab['answer'] if lab is not None else None
        row = {
            'event_id': ev.event_id, 'p': p, 'margin': margin,
            'raw_confidence': float(res.raw_confidence), 'confidence': float(res.confidence),
            'top_right': bool(truth and top == t_shopper and _hyp_key(best) == t_key),
            'reviewed': ev.event_id in reviewed, 'auto_right': bool(auto_ok),
            'labelled': ans is not None,
            # the chance this event had of being labelled: 1 for a review, the fraction for a
            # spot check (the request says; the learner weighs labels by its inverse)
            'label_chance': lab['label_chance'] if lab is not None else 0.0,
        }
        if ans is not None:     # what the learner may know: the reviewer's answer
            row['label_right'] = answer_matches(top, best.to_dict() if best else None, ans)
        out.rows.append(row)
    out.metrics = evaluate(scenario, [r.to_dict() for r in out.receipts],
                           [r.to_dict() for r in out.requests], [e.to_dict() for e in events])
    return out


# --- the learning step ------------------------------------------------------------------------
def learn(store, state: ArmState, rows: list[dict], examples: list[dict], day_dir: pathlib.Path,
          target_accuracy: float = GOAL_ACCURACY,
          credibility: float | None = CREDIBILITY) -> ArmState:
    """The next day's state from every event so far: fit, write the nodes' files into
    ``day_dir``, and read them back with the nodes' loaders (what a live graph would run).
    ``credibility``: the bars' accuracy bound (``learning.tune_thresholds``); None: its mean."""
    day_dir.mkdir(parents=True, exist_ok=True)
    # the fusion node's calibration_file, anchored at the shipped calibration: the step
    # review_learn --cart-db runs
    anchor = state.shipped_calibration or state.calibration
    platt = refit_fusion_calibration(rows, anchor)
    cal_path = day_dir / 'calibration.json'
    platt.save(cal_path)
    # unit weights (shelf node: weight_models_file)
    models = fit_weight_models(store.catalog, examples)
    wm_path = day_dir / 'weight_models.yaml'
    write_weight_models(models, wm_path)
    # the cart's bars (cart node: thresholds_file), on the features the fused cart compares:
    # the step review_learn --cart-db runs on a store's cart database
    th, prior = tune_fused_bars(rows, target_accuracy,
                                (state.cart.min_confidence, state.cart.min_margin), credibility)
    th_path = day_dir / 'thresholds.yaml'
    write_thresholds({**th.to_dict(), 'prior_platt': prior.to_dict()}, th_path)
    overlay = load_weight_overlay(str(wm_path)) if models else None
    return ArmState(cart=replace(state.cart, **read_thresholds(th_path)),
                    calibration=Platt.load(cal_path), overlay=overlay, stats=state.stats,
                    classifier=state.classifier, shipped_calibration=anchor,
                    files={'calibration': str(cal_path), 'thresholds': str(th_path),
                           'weight_models': str(wm_path),
                           'tuner': {**th.to_dict(), 'prior_platt': prior.to_dict()}})


# --- the experiment ---------------------------------------------------------------------------
def day_plan(days: int, per_day: int, first_seed: int) -> list[list[tuple[int, int]]]:
    """[[(seed, level)] per day]: levels 2 and 3 alternating, seeds first + 100 d + k."""
    return [[(first_seed + 100 * d + k, 2 + k % 2) for k in range(per_day)]
            for d in range(days)]


def shipped_state(params_path: pathlib.Path, stats: DetectorStats) -> ArmState:
    """The fused cart's thresholds and the fusion's calibration as the graph's parameters file
    sets them (``cart:`` and ``fusion:`` sections)."""
    doc = load_params_file(params_path)
    node = doc.get('cart', {})
    cart = fused_params(cart_params_of(node), float(node.get('fused_min_confidence', -1.0)))
    cal = str(doc.get('fusion', {}).get('calibration_file', '') or '')
    if cal and not pathlib.Path(cal).is_absolute():
        cal = str((params_path.parent / cal).resolve())
    return ArmState(cart=cart, calibration=Platt.load(cal) if cal else Platt(), stats=stats,
                    files={'calibration': cal})


def _review_figures(results: list[ScenarioResult]) -> dict:
    """Events, reviews and how many of the rest were decided right, over ``results``."""
    rows = [r for res in results for r in res.rows]
    auto = [r for r in rows if not r['reviewed']]
    return {'scenarios': len(results), 'events': len(rows), 'reviews': len(rows) - len(auto),
            'review_rate': (len(rows) - len(auto)) / len(rows) if rows else 0.0,
            'unreviewed': len(auto),
            'unreviewed_accuracy': (sum(r['auto_right'] for r in auto) / len(auto)
                                    if auto else 1.0)}


def _reviewed(results: list[ScenarioResult]) -> list[dict]:
    """What sent each reviewed event of ``results`` to review, and its cart features."""
    out = []
    for res in results:
        why = {r.event_id: r for r in res.requests}
        for row in res.rows:
            if row['reviewed']:
                req = why[row['event_id']]
                out.append({'seed': res.seed, 'level': res.level, 'event_id': row['event_id'],
                            'p': round(row['p'], 4), 'margin': round(row['margin'], 4),
                            'top_right': row['top_right'], 'reason': int(req.reason),
                            'detail': req.detail})
    return out


def _wrong_unreviewed(results: list[ScenarioResult]) -> list[dict]:
    """The events of ``results`` the cart decided unasked and got wrong, with their cart
    features (what a stricter bar would have had to catch)."""
    return [{'seed': res.seed, 'level': res.level, 'event_id': row['event_id'],
             'p': round(row['p'], 4), 'margin': round(row['margin'], 4),
             'top_right': row['top_right']}
            for res in results for row in res.rows
            if not row['reviewed'] and not row['auto_right']]


def _summary(day: int, arm: str, state: ArmState, results: list[ScenarioResult]) -> dict:
    rows = [r for res in results for r in res.rows]
    shoppers = sum(res.metrics['shoppers'] for res in results)
    return {
        'day': day, 'arm': arm, **_review_figures(results), 'shoppers': shoppers,
        'spot_checks': sum(res.spot_checks for res in results),
        'receipts_exact': sum(res.metrics['receipts_exact'] for res in results),
        'receipts_exact_rate': (sum(res.metrics['receipts_exact'] for res in results)
                                / shoppers if shoppers else 0.0),
        'ece': ece([(r['confidence'], r['top_right']) for r in rows]),
        'hindsight': hindsight_bars(rows, GOAL_ACCURACY),
        'min_confidence': state.cart.min_confidence, 'min_margin': state.cart.min_margin,
        'platt': state.calibration.to_dict(), 'learned_skus': len(state.overlay or {}),
        'detector_sku_accuracy': state.stats.sku_accuracy if state.stats else None,
        'detector_product_recall': state.stats.product.recall if state.stats else None,
        'files': dict(state.files),
    }


def _both_arms(ctx: dict, seed: int, level: int, states: dict) -> dict:
    """One scenario through both arms: {arm: ScenarioResult}."""
    store, sc = ctx['store'], generate(ctx['store'], seed, level)
    frames = ctx['frames_of'](store, sc)
    colors = shopper_colors(store, sc) if frames else None
    histories, shelf, out = {}, {}, {}
    for arm in ARMS:
        # the shelf events depend on the weight overlay only, the tracks on the detector
        # figures only: arms that share them share the work
        okey = json.dumps(states[arm].overlay, sort_keys=True)
        if okey not in shelf:
            shelf[okey] = shelf_events(store, sc, physics_params=ctx['physics'],
                                       overlay=states[arm].overlay,
                                       pipeline_params=ctx['shelf_params'])
        st = states[arm].stats
        key = json.dumps(st.to_dict(), sort_keys=True)
        if key not in histories:       # tracking does not depend on the learned files
            model = DetectionModel(st, list(store.catalog.products), seed=seed * 31 + level,
                                   colors=colors, confusion=ctx['pipe'].fusion.sku_confusion)
            histories[key], _ = run_tracking(store, sc, frames, model,
                                             tracker_params=ctx['pipe'].tracker)
        out[arm] = run_scenario(store, ctx['geom'], sc, histories[key], ctx['pipe'], states[arm],
                                seed, physics=ctx['physics'],
                                reviewer_delay_s=ctx['reviewer_delay_s'],
                                spot_check_fraction=ctx['spot_check_fraction'],
                                events=shelf[okey])
    return out


_CTX: dict = {}


def _pool_task(args):
    seed, level, states = args
    t0 = time.monotonic()
    return _both_arms(_CTX, seed, level, states), time.monotonic() - t0


def _run_tasks(ctx: dict, tasks: list, jobs: int) -> list:
    """[(seed, level, states)] -> [({arm: ScenarioResult}, seconds)], in ``jobs`` forked
    processes when > 1 (same results)."""
    if jobs > 1:
        import multiprocessing
        _CTX.clear()
        _CTX.update(ctx)
        with multiprocessing.get_context('fork').Pool(jobs) as pool:
            return pool.map(_pool_task, tasks, chunksize=1)
    return [(_both_arms(ctx, seed, level, st), 0.0) for seed, level, st in tasks]


def run_experiment(store, params_path: pathlib.Path, plan, out_dir: pathlib.Path, *,
                   frames_of: Callable, stats: DetectorStats | None = None,
                   physics: PhysicsParams | None = None,
                   spot_check_fraction: float | None = None,
                   reviewer_delay_s: float = 20.0, target_accuracy: float = GOAL_ACCURACY,
                   credibility: float | None = CREDIBILITY,
                   classifier: Callable | None = None, log=None,
                   on_day: Callable | None = None, jobs: int = 1,
                   start_bars: tuple[float, float] | None = None,
                   heldout: list[tuple[int, int]] | None = None) -> list[dict]:
    """Both arms over ``plan`` (:func:`day_plan`); ``frames_of(store, scenario)``: the rendered
    truth frames. Returns one summary per day and arm; ``on_day(summaries so far)`` after each
    day. ``jobs`` > 1: a day's scenarios in that many forked processes (same results).
    ``start_bars``: (min_confidence, min_margin) both arms start from instead of the parameters
    file's (a store that does not trust bars tuned on the simulator). ``heldout``: [(seed,
    level)] run every day with each arm's state of that day and never learned from: the same
    events every day, so a change there is the learning's, not the day's mix of events."""
    ctx = {'store': store, 'geom': StoreGeometry(store),
           'pipe': load_pipeline_params(params_path), 'shelf_params': load_shelf_params(),
           'physics': physics, 'frames_of': frames_of, 'reviewer_delay_s': reviewer_delay_s,
           'spot_check_fraction': spot_check_fraction}
    stats = stats or measured_stats()
    shipped = shipped_state(params_path, stats)
    if start_bars is not None:
        shipped.cart = replace(shipped.cart, min_confidence=float(start_bars[0]),
                               min_margin=float(start_bars[1]))
    states = {arm: replace(shipped, files=dict(shipped.files)) for arm in ARMS}
    rows: list[dict] = []
    examples: list[dict] = []
    decided: list[dict] = []
    days = []
    for day, scenarios in enumerate(plan):
        results: dict[str, list[ScenarioResult]] = {arm: [] for arm in ARMS}
        day_scenarios = [generate(store, seed, level) for seed, level in scenarios]
        # the day's scenarios and the held-out set in one pool
        done = _run_tasks(ctx, [(seed, level, states)
                                for seed, level in list(scenarios) + list(heldout or ())], jobs)
        done, held = done[:len(scenarios)], done[len(scenarios):]
        for (seed, level), (res, took_s) in zip(scenarios, done):
            for arm in ARMS:
                results[arm].append(res[arm])
            if log:
                log(f'day {day} l{level} s{seed}: {len(res["control"].rows)} events, '
                    f'{took_s:.1f} s')
        for arm in ARMS:
            days.append(_summary(day, arm, states[arm], results[arm]))
            if heldout:
                days[-1]['heldout'] = {**_review_figures([res[arm] for res, _ in held]),
                                       'reviewed': _reviewed([res[arm] for res, _ in held]),
                                       'wrong': _wrong_unreviewed([res[arm] for res, _ in held])}
        res = results['learning']
        rows += [r for x in res for r in x.rows]
        examples += [e for x in res for e in x.examples]
        decided += [d for x in res for d in x.decided]
        nxt = learn(store, states['learning'], rows, examples,
                    out_dir / 'learning' / f'day{day}', target_accuracy, credibility)
        # what the learner saw, and the learning arm's held-out events of the day: a tuner
        # can be tried on them without running the days again
        _write_json(out_dir / 'learning' / f'day{day}' / 'rows.json', rows)
        if heldout:
            _write_json(out_dir / 'learning' / f'day{day}' / 'heldout_rows.json',
                        [r for res, _ in held for r in res['learning'].rows])
        if classifier is not None:
            # one folder per day under one parent: the held-out windows are built once there,
            # and each day's windows keep their own name in the accumulated dataset
            got = classifier(store, day_scenarios, decided,
                             out_dir / 'learning' / 'classifier' / f'day{day}',
                             states['learning'].classifier)
            nxt.stats = DetectorStats.from_dict(got['detector_stats'])
            nxt.classifier = got
            nxt.files['classifier'] = got.get('weights', '')
            nxt.files['classifier_report'] = got.get('report', '')
        states['learning'] = nxt
        if on_day:
            on_day(days)
    return days


# --- output -----------------------------------------------------------------------------------
def _write_json(path: pathlib.Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=None, separators=(',', ':')))


def _hind(day: dict) -> str:
    """The review rate of the day's bars chosen with hindsight ('-' in a day written before
    the figure existed)."""
    h = day.get('hindsight')
    return f'{h["review_rate"]:.1%}' if h else '-'


def table(days: list[dict]) -> str:
    hdr = (f'{"day":>3} {"arm":8} {"scen":>4} {"events":>6} {"reviews":>7} {"review%":>7} '
           f'{"checks":>6} {"unrev":>5} {"unrev_acc%":>10} {"exact":>9} {"ECE":>5} '
           f'{"min_conf":>8} {"margin":>6} {"hind%":>6}')
    if any('heldout' in d for d in days):
        hdr += f' {"ho_rev%":>7} {"ho_acc%":>7}'
    lines = [hdr, '-' * len(hdr)]
    for d in days:
        ho = d.get('heldout')
        tail = (f' {ho["review_rate"]:>7.1%} {ho["unreviewed_accuracy"]:>7.1%}' if ho else '')
        lines.append(
            f'{d["day"]:>3} {d["arm"]:8} {d["scenarios"]:>4} {d["events"]:>6} {d["reviews"]:>7} '
            f'{d["review_rate"]:>7.1%} {d["spot_checks"]:>6} {d["unreviewed"]:>5} '
            f'{d["unreviewed_accuracy"]:>10.1%} '
            f'{d["receipts_exact"]:>3}/{d["shoppers"]:<3}{"":>2} {d["ece"]:>5.3f} '
            f'{d["min_confidence"]:>8.3f} {d["min_margin"]:>6.2f} {_hind(d):>6}' + tail)
    return '\n'.join(lines)


def goal_lines(days: list[dict]) -> list[str]:
    learn_days = [d for d in days if d['arm'] == 'learning']
    if not learn_days:
        return ['goal missed: no day was run']
    last = learn_days[-1]
    rates = [d['review_rate'] for d in learn_days]
    falling = all(b <= a for a, b in zip(rates, rates[1:]))
    met = (last['review_rate'] <= GOAL_REVIEW_RATE
           and last['unreviewed_accuracy'] >= GOAL_ACCURACY)
    figures = (f'learning arm, last day: review rate {last["review_rate"]:.1%} (goal <= '
               f'{GOAL_REVIEW_RATE:.0%}), unreviewed decisions {last["unreviewed_accuracy"]:.1%}'
               f' right (goal >= {GOAL_ACCURACY:.0%}); review rate per day '
               + ', '.join(f'{r:.1%}' for r in rates)
               + (' (falls or holds every day)' if falling else ' (does not fall every day)'))
    out = [('goal met: ' if met and falling else 'goal missed: ') + figures]
    held = [d['heldout'] for d in learn_days if 'heldout' in d]
    if held:
        rates = [h['review_rate'] for h in held]
        falling = all(b <= a for a, b in zip(rates, rates[1:]))
        met = (held[-1]['review_rate'] <= GOAL_REVIEW_RATE
               and held[-1]['unreviewed_accuracy'] >= GOAL_ACCURACY)
        out.append(('goal met' if met and falling else 'goal missed')
                   + f' on the held-out set ({held[-1]["scenarios"]} scenarios, '
                   f'{held[-1]["events"]} events, the same every day): review rate per day '
                   + ', '.join(f'{r:.1%}' for r in rates)
                   + (' (falls or holds every day)' if falling else ' (does not fall every day)')
                   + '; unreviewed right per day '
                   + ', '.join(f'{h["unreviewed_accuracy"]:.1%}' for h in held))
    return out


def plot(days: list[dict], path: pathlib.Path, start: str = 'shipped files',
         title: str = 'Learning from reviews with cameras, levels 2-3') -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.6), dpi=110)
    # the control dashed with large hollow markers: where the arms agree both stay visible
    for arm, color, style, size in (('control', 'C7', 'o--', 11), ('learning', 'C3', 'o-', 5)):
        ds = [d for d in days if d['arm'] == arm]
        if not ds:
            continue        # an arm not run (learning_days_live --arms learning)
        xs = [d['day'] for d in ds]
        kw = {'color': color, 'label': arm, 'markersize': size,
              'markerfacecolor': 'none' if arm == 'control' else color}
        ax1.plot(xs, [100 * d['review_rate'] for d in ds], style, **kw)
        ax2.plot(xs, [100 * d['unreviewed_accuracy'] for d in ds], style, **kw)
        ho = [(d['day'], d['heldout']) for d in ds if 'heldout' in d]
        if ho:
            kw = dict(kw, label=f'{arm}, held-out set', markersize=size * 0.8)
            ax1.plot([x for x, _ in ho], [100 * h['review_rate'] for _, h in ho], 's:', **kw)
            ax2.plot([x for x, _ in ho], [100 * h['unreviewed_accuracy'] for _, h in ho], 's:',
                     **kw)
    ax1.axhline(100 * GOAL_REVIEW_RATE, color='C2', ls='--', label='goal (<= 2 %)')
    ax2.axhline(100 * GOAL_ACCURACY, color='C2', ls='--', label='goal (>= 99 %)')
    ax1.set_ylabel('events sent to review [%]')
    ax2.set_ylabel('events decided without review that are right [%]')
    ax1.set_ylim(bottom=0)
    lo, hi = ax2.get_ylim()
    ax2.set_ylim(lo, min(hi, 100.5))     # no share above 100 % (matplotlib pads a flat line)
    for ax in (ax1, ax2):
        ax.set_xlabel('simulated day')
        ax.set_xticks(sorted({d['day'] for d in days}))
        ax.grid(alpha=0.3)
    # one legend under both panels: inside, it covered the lines
    handles, labels = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    handles.append(h2[-1])
    labels.append(l2[-1])
    fig.legend(handles, labels, loc='lower center', ncol=3, fontsize=8, frameon=False)
    arms = sorted({d['arm'] for d in days})
    fig.suptitle(f'{title} ({"both arms start" if len(arms) > 1 else arms[0] + " arm starts"} '
                 f'from: {start})')
    fig.tight_layout(rect=(0, 0.11, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--store', default=str(ROOT / 'config/stores/demo.yaml'))
    ap.add_argument('--params', default=str(ROOT / 'config/params/store.yaml'),
                    help="the graph's parameters file (tracker, fusion and cart sections)")
    ap.add_argument('--days', type=int, default=5)
    ap.add_argument('--per-day', type=int, default=10, help='scenarios per day')
    ap.add_argument('--first-seed', type=int, default=20000)
    ap.add_argument('--fps', type=float, default=5.0)
    ap.add_argument('--heldout', type=int, default=20,
                    help='scenarios run every day with that day\'s state and never learned '
                    'from (seeds --heldout-seed + k, levels 2 and 3 alternating); 0: none')
    ap.add_argument('--heldout-seed', type=int, default=29000)
    ap.add_argument('--gt-cache', default=str(ROOT / 'out/learning_days/gt'))
    ap.add_argument('--wait-for-cache-s', type=float, default=0.0,
                    help='wait up to this long for a truth file that another process is '
                    'rendering into --gt-cache before rendering it here')
    ap.add_argument('--stats', default=None, help='detector stats JSON (default: shipped)')
    ap.add_argument('--target-accuracy', type=float, default=GOAL_ACCURACY)
    ap.add_argument('--credibility', type=float, default=CREDIBILITY,
                    help="the learned bars must reach the target accuracy in this share of "
                    "the calibration's draws (review_learn's default, %(default)s); 0: on its "
                    "mean")
    ap.add_argument('--spot-check-fraction', type=float, default=None,
                    help="share of the events decided without review that the cart puts to "
                    "the reviewer anyway (default: the parameters file's "
                    "cart.spot_check_fraction)")
    ap.add_argument('--reviewer-delay-s', type=float, default=20.0)
    ap.add_argument('--bias-sd', type=float, nargs=2, default=(0.0, 0.0),
                    help="true unit weights off the catalog by this many sd (range; "
                    "bench_review's catalog bias); default: none")
    ap.add_argument('--classifier', action='store_true',
                    help='fine-tune the hand/product classifier on the reviewed crops after '
                    'each day (store_bench.review_crops.learn_classifier)')
    ap.add_argument('--start-bars', type=float, nargs=2, metavar=('MIN_CONF', 'MIN_MARGIN'),
                    default=None, help="both arms start from these bars instead of the "
                    "parameters file's (e.g. 0.9 0.5: a new store that does not trust bars "
                    "tuned on the simulator)")
    ap.add_argument('--jobs', type=int, default=1,
                    help="a day's scenarios in this many processes")
    ap.add_argument('--out', default=str(ROOT / 'out/learning_days'))
    ns = ap.parse_args(argv)
    if ns.days < 1 or ns.per_day < 1:
        ap.error('--days and --per-day must be at least 1')
    if not 0.0 <= ns.credibility < 1.0:
        ap.error(f'--credibility must be in [0, 1), got {ns.credibility}')
    store = load_store(ns.store)
    physics = None
    if ns.bias_sd[1] > 0:
        rng = random.Random(7)
        physics = PhysicsParams(catalog_bias=tuple(
            (sku, round(rng.choice((-1, 1)) * rng.uniform(*ns.bias_sd) * p.unit_grams_sd, 2))
            for sku, p in sorted(store.catalog.products.items())))
    classifier = None
    if ns.classifier:
        try:
            from store_bench.review_crops import learn_classifier as classifier
        except ImportError as exc:
            ap.error(f'--classifier: {exc}')
    out = pathlib.Path(ns.out)
    t0 = time.monotonic()

    def frames_of(st, sc):
        path = truth_cache_path(ns.gt_cache, st, sc, ns.fps)
        waited = time.monotonic()
        while not path.exists() and time.monotonic() - waited < ns.wait_for_cache_s:
            time.sleep(2.0)
        return load_or_render_truth(ns.gt_cache, st, sc, ns.fps)

    def write(days, final=False):
        out.mkdir(parents=True, exist_ok=True)
        (out / 'learning_days.json').write_text(json.dumps(
            {'args': dict(vars(ns)), 'wall_s': time.monotonic() - t0, 'complete': final,
             'days': days, 'goal': goal_lines(days)}, indent=2, default=str) + '\n')

    days = run_experiment(
        store, pathlib.Path(ns.params), day_plan(ns.days, ns.per_day, ns.first_seed), out,
        frames_of=frames_of, stats=measured_stats(ns.stats), physics=physics,
        spot_check_fraction=ns.spot_check_fraction, reviewer_delay_s=ns.reviewer_delay_s,
        target_accuracy=ns.target_accuracy, credibility=ns.credibility or None,
        classifier=classifier, jobs=ns.jobs,
        start_bars=tuple(ns.start_bars) if ns.start_bars else None,
        heldout=day_plan(1, ns.heldout, ns.heldout_seed)[0] if ns.heldout > 0 else None,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        on_day=lambda d: (write(d), print(table(d), file=sys.stderr, flush=True)))
    wall_s = time.monotonic() - t0
    print(f'learning days: {ns.days} days x {ns.per_day} scenarios (levels 2-3, seeds '
          f'{ns.first_seed} + 100 d + k), target accuracy {ns.target_accuracy} '
          f'({"at credibility %g" % ns.credibility if ns.credibility else "on the mean"}), '
          'spot checks '
          f'{"of --params" if ns.spot_check_fraction is None else ns.spot_check_fraction}, '
          f'reviewer delay {ns.reviewer_delay_s:g} s, catalog bias '
          f'{ns.bias_sd[0]:g}-{ns.bias_sd[1]:g} sd, classifier '
          f'{"fine-tuned" if classifier else "shipped"}, start bars '
          f'{"%g / %g" % tuple(ns.start_bars) if ns.start_bars else "of --params"}; '
          f'wall {wall_s:.0f} s')
    print(table(days))
    for line in goal_lines(days):
        print(line)
    write(days, final=True)
    plot(days, out / 'learning_days.png',
         start=('bars %g / %g' % tuple(ns.start_bars)) if ns.start_bars else 'shipped files')
    print(f'wrote {out / "learning_days.json"} and {out / "learning_days.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
