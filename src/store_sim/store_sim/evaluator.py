"""Scores a run: receipts against the scenario's truth.

    evaluate --scenario S.yaml --run-dir DIR [--json OUT.json]
    evaluate --suite DIR [--json OUT.json]      # every run dir under DIR with a scenario.yaml

Metrics: receipt exact-match rate (a receipt matches when its CONFIRMED lines equal the truth
exactly and it has no pending lines; a missing receipt is a miss), item-level precision, recall
and F1 over units (TP per sku = min(predicted, truth), confirmed lines only), review rate =
review requests / shelf events (spot checks, the cart's random checks of its own decisions, are
counted apart: they are not events the machine could not decide). Only the latest revision of
each receipt counts.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections import Counter
from typing import Callable

from store_interfaces.msg import CartLine, ReviewRequest

from store_sim.scenario import load_scenario, Scenario, ScenarioError, truth_receipts

STATUS_CONFIRMED = CartLine.STATUS_CONFIRMED
STATUS_PENDING_REVIEW = CartLine.STATUS_PENDING_REVIEW


def _ratio(num: float, den: float, empty: float | None = 1.0) -> float | None:
    return num / den if den else empty


def latest_receipts(receipts: list[dict]) -> dict[str, dict]:
    """{receipt_id: record} keeping the highest revision (the last one on ties)."""
    out: dict[str, dict] = {}
    for r in receipts:
        rid = r.get('receipt_id') or r.get('shopper_id', '')
        if rid not in out or int(r.get('revision', 1)) >= int(out[rid].get('revision', 1)):
            out[rid] = r
    return out


def before_review(receipts: list[dict]) -> list[dict]:
    """The receipts as the machine issued them before any review: revision 1 of each, with its
    pending lines billed as guessed (confirmed). The rule of the offline benchmarks, whose runs
    have no reviewer; a live run scored with it compares with them (its reviews go unanswered,
    so its issued receipts keep their pending lines)."""
    return [dict(r, lines=[dict(ln, status=STATUS_CONFIRMED) for ln in r.get('lines', [])])
            for r in receipts if int(r.get('revision', 1)) == 1]


def _dedupe(records: list[dict], key: str) -> list[dict]:
    seen, out = set(), []
    for r in records:
        k = r.get(key)
        if k is not None and k in seen:
            continue
        seen.add(k)
        out.append(r)
    return out


def evaluate(scenario_truth: Scenario | dict, receipts: list[dict],
             review_requests: list[dict] = (), shelf_events: list[dict] = ()) -> dict:
    """Metrics of one run. ``scenario_truth``: a Scenario or {shopper_id: {sku: qty}}."""
    truth = (truth_receipts(scenario_truth) if isinstance(scenario_truth, Scenario)
             else {k: dict(v) for k, v in scenario_truth.items()})
    confirmed: dict[str, Counter] = {}
    pending: dict[str, Counter] = {}
    n_receipts: Counter = Counter()
    for r in latest_receipts(receipts).values():
        sid = r.get('shopper_id', '')
        n_receipts[sid] += 1
        c = confirmed.setdefault(sid, Counter())
        p = pending.setdefault(sid, Counter())
        for line in r.get('lines', []):
            qty = int(line.get('quantity', 0))
            if int(line.get('status', STATUS_CONFIRMED)) == STATUS_CONFIRMED:
                c[line['sku']] += qty
            else:
                p[line['sku']] += qty
    tp = fp = fn = 0
    exact = 0
    per_shopper = {}
    for sid in sorted(set(truth) | set(confirmed)):
        t = Counter({k: v for k, v in truth.get(sid, {}).items() if v > 0})
        c = Counter({k: v for k, v in confirmed.get(sid, Counter()).items() if v > 0})
        p = Counter({k: v for k, v in pending.get(sid, Counter()).items() if v > 0})
        s_tp = sum(min(c[k], t[k]) for k in set(c) | set(t))
        s_fp, s_fn = sum(c.values()) - s_tp, sum(t.values()) - s_tp
        tp, fp, fn = tp + s_tp, fp + s_fp, fn + s_fn
        received = n_receipts[sid] > 0
        match = sid in truth and received and n_receipts[sid] == 1 and c == t and not p
        exact += int(match)
        per_shopper[sid] = {
            'expected': sid in truth, 'receipts': n_receipts[sid], 'exact': match,
            'truth': dict(sorted(t.items())), 'confirmed': dict(sorted(c.items())),
            'pending': dict(sorted(p.items())), 'tp': s_tp, 'fp': s_fp, 'fn': s_fn}
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)) if precision + recall else 0.0
    requests = _dedupe(list(review_requests), 'request_id')
    reviews = [r for r in requests if int(r.get('reason', 0)) != ReviewRequest.REASON_SPOT_CHECK]
    events = _dedupe(list(shelf_events), 'event_id')
    n_expected = len(truth)
    received = sum(1 for sid in truth if n_receipts[sid] > 0)
    return {
        'shoppers': n_expected,
        'receipts_received': received,
        'receipts_missing': n_expected - received,
        'receipts_unexpected': sum(1 for sid in n_receipts if sid not in truth),
        'receipts_exact': exact,
        'receipt_exact_match_rate': _ratio(exact, n_expected),
        'units_truth': tp + fn, 'units_confirmed': tp + fp,
        'units_pending': sum(sum(p.values()) for p in pending.values()),
        'tp': tp, 'fp': fp, 'fn': fn,
        'precision': precision, 'recall': recall, 'f1': f1,
        'shelf_events': len(events), 'review_requests': len(reviews),
        'review_rate': _ratio(len(reviews), len(events), 0.0),
        'spot_checks': len(requests) - len(reviews),
        'per_shopper': per_shopper,
    }


def read_jsonl(path: pathlib.Path) -> list[dict]:
    """Records of a JSON-lines file; a missing file is empty, a torn last line is skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding='utf-8').splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def evaluate_run(scenario_path: str | pathlib.Path, run_dir: str | pathlib.Path,
                 rule: Callable[[list[dict]], list[dict]] | None = None) -> dict:
    """Metrics of a run folder; ``rule``: applied to its receipts before scoring (e.g.
    :func:`before_review`)."""
    run = pathlib.Path(run_dir)
    scenario = load_scenario(scenario_path)
    receipts = read_jsonl(run / 'receipts.jsonl')
    metrics = evaluate(scenario, rule(receipts) if rule is not None else receipts,
                       read_jsonl(run / 'review_requests.jsonl'),
                       read_jsonl(run / 'shelf_events.jsonl'))
    metrics['run_dir'] = str(run)
    metrics['scenario'] = str(scenario_path)
    return metrics


def aggregate(runs: list[dict]) -> dict:
    """Suite totals: micro-averaged over all shoppers and units."""
    tot = Counter()
    for m in runs:
        for k in ('shoppers', 'receipts_received', 'receipts_exact', 'tp', 'fp', 'fn',
                  'shelf_events', 'review_requests', 'units_pending', 'spot_checks'):
            tot[k] += m.get(k, 0)
    precision = _ratio(tot['tp'], tot['tp'] + tot['fp'])
    recall = _ratio(tot['tp'], tot['tp'] + tot['fn'])
    return {
        'runs': len(runs), **dict(tot),
        'receipt_exact_match_rate': _ratio(tot['receipts_exact'], tot['shoppers']),
        'precision': precision, 'recall': recall,
        'f1': (2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        'review_rate': _ratio(tot['review_requests'], tot['shelf_events'], 0.0),
    }


COLUMNS = (('run', 'run', '{}'), ('shoppers', 'shop', '{}'), ('receipts_exact', 'exact', '{}'),
           ('receipt_exact_match_rate', 'exact%', '{:.0%}'), ('precision', 'P', '{:.3f}'),
           ('recall', 'R', '{:.3f}'), ('f1', 'F1', '{:.3f}'), ('shelf_events', 'events', '{}'),
           ('review_requests', 'reviews', '{}'), ('review_rate', 'rev%', '{:.0%}'),
           ('spot_checks', 'checks', '{}'))


def table(rows: list[dict]) -> str:
    """An aligned text table of run metrics (and a TOTAL row if present)."""
    cells = [[h for _, h, _ in COLUMNS]]
    for r in rows:
        cells.append([('-' if r.get(k) is None else fmt.format(r.get(k)))
                      for k, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ['  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def main(args=None) -> int:
    ap = argparse.ArgumentParser(prog='evaluate', description=__doc__.split('\n')[0])
    ap.add_argument('--scenario', help='scenario file of a single run')
    ap.add_argument('--run-dir', help='run directory with receipts.jsonl etc.')
    ap.add_argument('--suite', help='directory of run directories, each with a scenario.yaml')
    ap.add_argument('--json', help='write the metrics here (suite default: '
                                   '<suite>/suite_metrics.json)')
    ns = ap.parse_args(args)
    try:
        if ns.suite:
            suite = pathlib.Path(ns.suite)
            runs = []
            for d in sorted(p.parent for p in suite.rglob('scenario.yaml')):
                m = evaluate_run(d / 'scenario.yaml', d)
                m['run'] = str(d.relative_to(suite)) if d != suite else d.name
                runs.append(m)
            if not runs:
                print(f'error: no run directory with a scenario.yaml under {suite}',
                      file=sys.stderr)
                return 2
            total = aggregate(runs)
            print(table(runs + [dict(total, run='TOTAL')]))
            out = pathlib.Path(ns.json) if ns.json else suite / 'suite_metrics.json'
            doc = {'total': total, 'runs': runs}
        elif ns.scenario and ns.run_dir:
            m = evaluate_run(ns.scenario, ns.run_dir)
            m['run'] = pathlib.Path(ns.run_dir).name
            print(table([m]))
            for sid, s in m['per_shopper'].items():
                if not s['exact']:
                    print(f'  {sid}: truth {s["truth"]} confirmed {s["confirmed"]} '
                          f'pending {s["pending"]} receipts {s["receipts"]}')
            out = pathlib.Path(ns.json) if ns.json else None
            doc = m
        else:
            ap.error('give --scenario and --run-dir, or --suite')
    except ScenarioError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if out is not None:
        out.write_text(json.dumps(doc, indent=2, sort_keys=True) + '\n')
        print(f'metrics written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
