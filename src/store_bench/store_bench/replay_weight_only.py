"""The weight-only column of a run: its own shelf and gate events, decided by a cart without
camera hints.

    replay_weight_only --run-dir out/demo [--scenario S.yaml] [--out DIR] [--json OUT.json]

A run of the store records every shelf event and gate event it published
(``<run>/shelf_events.jsonl``, ``<run>/gate_events.jsonl``: the receipt recorder's JSON of the
messages) and the parameters its nodes were launched with (``<run>/params.yaml``). This replays
those events, converted back to messages and through the cart node's own conversions
(``store_shelf.convert.shelf_event_from_msg``, ``store_cart.convert.gate_event_from_msg``), into a
:class:`store_cart.engine.CartEngine` with the launched cart's parameters but no shopper hint
and no fused threshold: exactly what the cart of the weight-only graph decides on the same
sensor data. Time is the events' own (sensor) time: each gate event arrives at its stamp, each
shelf event at its settled stamp, and the engine ticks every ``tick_period_s`` as the node does,
so the engine's hold orders the decisions as the watermarks do live. No rclpy, no clock read.

Its receipts and review requests go to ``<out>`` (default ``<run>/weight_only``) as the receipt
recorder writes them, so ``store_sim.evaluator`` scores them like a run; with ``--scenario`` (or
the run's ``scenario.yaml``) the tool prints the evaluator's table with the run's own column
(the cameras + weight cart, when the run had cameras) beside the weight-only one, and per
shopper where their receipts differ.

Every record is untrusted: one that is not a valid event is skipped with its reason printed
(``refused``), never half-applied.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import pathlib
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from store_cart import convert
from store_cart.engine import CartEngine, cart_params_of, CartParams
from store_cart.model import ReceiptData, ReviewRequestData
from store_cart.thresholds import read_thresholds
from store_common.description import load_store, StoreConfigError
from store_interfaces.msg import GateEvent, ShelfEvent
from store_shelf.convert import shelf_event_from_msg
from store_sim.evaluator import evaluate_run, latest_receipts, read_jsonl
from store_sim.receipt_recorder_node import to_jsonable
from store_sim.scenario import ScenarioError

NS = 1_000_000_000


class ReplayError(ValueError):
    """A run directory that cannot be replayed (the message says what is missing)."""


# --- records -> messages -------------------------------------------------------------------------
def msg_from_dict(cls, record: Any):
    """A ROS message of type ``cls`` filled from ``record`` (the recorder's ``to_jsonable``).

    A key that is no field of the message (a recording of another message version) is an error,
    a missing one keeps the message default; a null float (the recorder writes NaN and inf as
    null) becomes NaN, so the cart refuses it as the node would. Raises TypeError, ValueError or
    AssertionError on a value the message does not take."""
    if not isinstance(record, dict):
        raise TypeError(f'{cls.__name__}: expected an object, got {type(record).__name__}')
    fields = cls.get_fields_and_field_types()
    unknown = sorted(set(record) - set(fields))
    if unknown:
        raise ValueError(f'{cls.__name__} has no field {", ".join(map(str, unknown))} (recorded '
                         'with another version of the message?)')
    msg = cls()
    for name, typ in fields.items():
        if name not in record:
            continue
        value = record[name]
        current = getattr(msg, name)
        if hasattr(current, 'get_fields_and_field_types'):
            value = msg_from_dict(type(current), value)
        elif typ.startswith('sequence<') and '/' in typ:
            pkg, name_ = typ[len('sequence<'):].rstrip('>').split(',')[0].split('/')
            element = getattr(importlib.import_module(f'{pkg}.msg'), name_)
            if not isinstance(value, list):
                raise TypeError(f'{name}: expected a list')
            value = [msg_from_dict(element, v) for v in value]
        elif typ.startswith('sequence<') or typ.endswith(']'):
            if not isinstance(value, list):
                raise TypeError(f'{name}: expected a list, got {type(value).__name__}')
            base = typ[len('sequence<'):].rstrip('>') if typ.startswith('sequence<') \
                else typ.split('[')[0]
            value = [_scalar(f'{name}[{i}]', base, v) for i, v in enumerate(value)]
        else:
            value = _scalar(name, typ, value)
        setattr(msg, name, value)
    return msg


_INTS = {f'{u}int{b}': ((0, 2 ** b - 1) if u else (-2 ** (b - 1), 2 ** (b - 1) - 1))
         for u in ('', 'u') for b in (8, 16, 32, 64)}
_INTS.update(byte=(0, 255), octet=(0, 255), char=(0, 255))


def _scalar(name: str, typ: str, value):
    """A JSON value as the scalar field type ``typ`` wants (message setters only check types
    when ROS_PYTHON_CHECK_FIELDS is set): a wrong type raises TypeError."""
    if typ in ('double', 'float', 'float32', 'float64'):
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f'{name}: expected a number, got {type(value).__name__}')
        return float(value)
    if typ in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f'{name}: expected an integer, got {type(value).__name__}')
        lo, hi = _INTS[typ]
        if not lo <= value <= hi:
            raise ValueError(f'{name}: {value} is outside the {typ} range {lo}..{hi}')
        return value
    if typ == 'boolean':
        if not isinstance(value, bool):
            raise TypeError(f'{name}: expected true or false, got {type(value).__name__}')
        return value
    if typ.startswith('string') or typ.startswith('wstring'):
        if not isinstance(value, str):
            raise TypeError(f'{name}: expected a string, got {type(value).__name__}')
        return value
    raise TypeError(f'{name}: field type {typ} is not read from JSON here')


@dataclass
class Inputs:
    shelf: list = field(default_factory=list)       # ShelfEventData, in file order
    gates: list = field(default_factory=list)       # GateEventData, in file order
    refused: list = field(default_factory=list)     # 'file:line: reason'


def read_inputs(run_dir: pathlib.Path) -> Inputs:
    """The run's shelf and gate events, through the cart node's conversions. Duplicates (the
    same event id) are kept: the engine recognises redeliveries, as live."""
    out = Inputs()
    for name, cls, conv, into in (
            ('shelf_events', ShelfEvent, shelf_event_from_msg, out.shelf),
            ('gate_events', GateEvent, convert.gate_event_from_msg, out.gates)):
        path = run_dir / f'{name}.jsonl'
        if not path.is_file():
            raise ReplayError(f'{path} is missing: was the run recorded (run_store --record)?')
        n_records, n_before = 0, len(out.refused)
        for i, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
            if not line.strip():
                continue
            n_records += 1
            try:
                into.append(conv(msg_from_dict(cls, json.loads(line))))
            except (ValueError, TypeError, AssertionError, AttributeError) as exc:
                out.refused.append(f'{path.name}:{i}: {type(exc).__name__}: {exc}')
        if n_records and not into:
            raise ReplayError(f'{path}: none of its {n_records} records is a {cls.__name__} '
                              f'({out.refused[n_before]})')
    return out


# --- the launched parameters ---------------------------------------------------------------------
def launched_node_params(run_dir: pathlib.Path, node: str) -> dict:
    """``ros__parameters`` of ``node`` (its name without namespace) in the run's params.yaml."""
    path = run_dir / 'params.yaml'
    if not path.is_file():
        raise ReplayError(f'{path} is missing: the runner writes the launched parameters there')
    doc = yaml.safe_load(path.read_text(encoding='utf-8')) or {}
    if not isinstance(doc, dict):
        raise ReplayError(f'{path}: not a parameters document')
    for key, value in doc.items():
        if str(key).rstrip('/').split('/')[-1] == node and isinstance(value, dict):
            params = value.get('ros__parameters')
            if isinstance(params, dict):
                return params
    raise ReplayError(f'{path}: no parameters of a node named {node!r}')


def weight_only_params(cart: dict) -> CartParams:
    """The cart parameters of the weight-only graph from a launched cart's parameters:
    ``use_fused_events`` and ``fused_min_confidence`` are dropped (they only apply to fused
    events); a thresholds file the cart read overrides min_confidence and min_margin as the node
    does while it exists."""
    params = cart_params_of(cart)
    th_file = cart.get('thresholds_file') or ''
    if th_file and pathlib.Path(th_file).is_file():
        params = replace(params, **read_thresholds(th_file))
    return params


# --- the replay ----------------------------------------------------------------------------------
@dataclass
class Replay:
    receipts: list = field(default_factory=list)    # ReceiptData, in issue order
    requests: list = field(default_factory=list)    # ReviewRequestData
    warnings: list = field(default_factory=list)    # the engine's operator warnings
    refused: list = field(default_factory=list)


def replay(inputs: Inputs, catalog, store_id: str, params: CartParams,
           tick_period_s: float = 0.1, end_pad_s: float | None = None) -> Replay:
    """Decide ``inputs`` with a weight-only cart engine in sensor time (see the module doc)."""
    out = Replay(refused=list(inputs.refused))
    arrivals = sorted([(g.stamp_ns, 0, i, g) for i, g in enumerate(inputs.gates)]
                      + [(e.settled_ns, 1, i, e) for i, e in enumerate(inputs.shelf)],
                      key=lambda a: a[:3])
    if not arrivals:
        return out
    step = max(1, int(round(tick_period_s * NS)))
    pad = end_pad_s if end_pad_s is not None else params.receipt_grace_s + params.hold_s + 1.0
    now = max(0, arrivals[0][0] - step)
    end = max(a[0] for a in arrivals) + int(pad * NS)
    engine = CartEngine(':memory:', catalog, store_id, params)

    def collect(outs) -> None:
        for o in outs:
            if isinstance(o, ReceiptData):
                out.receipts.append(o)
            elif isinstance(o, ReviewRequestData):
                out.requests.append(o)
            elif isinstance(o, str):
                out.warnings.append(o)

    try:
        k = 0
        while now <= end:
            while k < len(arrivals) and arrivals[k][0] <= now:
                _, kind, _, ev = arrivals[k]
                k += 1
                collect(engine.on_gate_event(ev) if kind == 0 else engine.on_shelf_event(ev))
            collect(engine.tick(now))
            now += step
    finally:
        engine.close()
    return out


def write_run(result: Replay, run_dir: pathlib.Path, out_dir: pathlib.Path,
              frame_id: str) -> None:
    """The replay's records as the receipt recorder writes them, and the run's shelf events and
    scenario beside them, so ``evaluate --run-dir out_dir`` scores the replay."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / 'receipts.jsonl', 'w', encoding='utf-8') as f:
        for r in result.receipts:
            f.write(json.dumps(to_jsonable(convert.receipt_msg(r, frame_id)),
                               sort_keys=True) + '\n')
    with open(out_dir / 'review_requests.jsonl', 'w', encoding='utf-8') as f:
        for r in result.requests:
            f.write(json.dumps(to_jsonable(convert.review_request_msg(r, frame_id)),
                               sort_keys=True) + '\n')
    for name in ('shelf_events.jsonl', 'gate_events.jsonl', 'scenario.yaml'):
        src = run_dir / name
        if src.is_file():
            (out_dir / name).write_bytes(src.read_bytes())


def replay_run(run_dir: str | pathlib.Path, out_dir: str | pathlib.Path | None = None
               ) -> tuple[Replay, pathlib.Path]:
    """Replay a recorded run directory; returns the result and where its records went."""
    run = pathlib.Path(run_dir)
    out = pathlib.Path(out_dir) if out_dir else run / 'weight_only'
    cart = launched_node_params(run, 'cart')
    store_file = cart.get('store_file') or ''
    if not store_file:
        raise ReplayError(f'{run}/params.yaml: the cart has no store_file')
    store = load_store(store_file)
    tick = float(cart.get('tick_period_s', 0.1))
    result = replay(read_inputs(run), store.catalog, store.id, weight_only_params(cart), tick)
    write_run(result, run, out, store.frame_id)
    return result, out


# --- the side-by-side table ----------------------------------------------------------------------
ROWS = (('receipts_exact', 'exact receipts', None),
        ('receipt_exact_match_rate', 'exact %', '{:.0%}'),
        ('precision', 'item precision', '{:.3f}'), ('recall', 'item recall', '{:.3f}'),
        ('f1', 'item F1', '{:.3f}'), ('units_pending', 'units pending review', None),
        ('shelf_events', 'shelf events', None), ('review_requests', 'reviews asked', None))


def _fmt(value, fmt) -> str:
    if value is None:
        return '-'
    return fmt.format(value) if fmt else str(value)


def _items(d: dict) -> str:
    return ', '.join(f'{q} x {k}' for k, q in sorted(d.items())) or 'nothing'


def receipt_text(s: dict) -> str:
    """One shopper's latest receipt as the evaluator saw it, in words."""
    if not s.get('receipts'):
        return 'no receipt'
    text = _items(s.get('confirmed', {}))
    if s.get('pending'):
        text += f'; pending {_items(s["pending"])}'
    return text + (' (exact)' if s.get('exact') else '')


def side_by_side(columns: list[tuple[str, dict]]) -> str:
    """The evaluator's metrics of several runs as one table, a column each, and per shopper the
    receipts that differ between the columns."""
    head = ['', *[name for name, _ in columns]]
    cells = [head] + [[label, *[_fmt(m.get(key), fmt) for _, m in columns]]
                      for key, label, fmt in ROWS]
    shoppers = sorted({s for _, m in columns for s in m.get('per_shopper', {})})
    cells[1:1] = [['shoppers', *[str(m.get('shoppers', '-')) for _, m in columns]]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ['  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    differ = []
    for sid in shoppers:
        per = [m.get('per_shopper', {}).get(sid, {}) for _, m in columns]
        texts = [receipt_text(s) for s in per]
        if len(set(texts)) > 1:
            differ.append(f'  {sid}: ' + ' | '.join(f'{name}: {t}' for (name, _), t
                                                    in zip(columns, texts)))
    if len(columns) > 1:
        lines.append('')
        if differ:
            lines.append('receipts that differ (truth: ' + '; '.join(
                f'{sid} {_items(columns[0][1]["per_shopper"][sid].get("truth", {}))}'
                for sid in shoppers if any(sid in d for d in differ)
                and sid in columns[0][1].get('per_shopper', {})) + ')')
            lines += differ
        else:
            lines.append('every shopper has the same receipt in both columns')
    return '\n'.join(lines)


def run_is_fused(run_dir: pathlib.Path) -> bool:
    """Whether the run's cart took fused events (cameras + weight)."""
    try:
        return bool(launched_node_params(run_dir, 'cart').get('use_fused_events', False))
    except ReplayError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='replay_weight_only', description=__doc__.split('\n')[0])
    ap.add_argument('--run-dir', required=True, help='a recorded run (run_store --record)')
    ap.add_argument('--scenario', help='the scenario, for the table (default: the run\'s '
                    'scenario.yaml)')
    ap.add_argument('--out', help='where the replay\'s records go (default: '
                    '<run-dir>/weight_only)')
    ap.add_argument('--json', help='write both columns\' metrics here')
    ns = ap.parse_args(argv)
    run = pathlib.Path(ns.run_dir)
    try:
        result, out = replay_run(run, ns.out)
        for reason in result.refused:
            print(f'refused: {reason}', file=sys.stderr)
        scenario = pathlib.Path(ns.scenario) if ns.scenario else run / 'scenario.yaml'
        if not scenario.is_file():
            print(f'replayed {len(result.receipts)} receipts into {out}; no scenario to score '
                  'them against')
            return 0
        columns = []
        if run_is_fused(run):
            columns.append(('cameras + weight', evaluate_run(scenario, run)))
        weight = evaluate_run(scenario, out)
        columns.append(('weight only', weight))
    except (ReplayError, StoreConfigError, ScenarioError, OSError) as exc:
        print(f'replay_weight_only: {exc}', file=sys.stderr)
        return 2
    print(side_by_side(columns))
    if ns.json:
        pathlib.Path(ns.json).write_text(json.dumps(dict(columns), indent=2, sort_keys=True)
                                         + '\n')
    return 0


def latest_lines(receipts: list[dict]) -> dict[str, tuple]:
    """shopper id -> (lines, pending reviews, total) of their latest receipt: what a comparison
    of two runs' receipts looks at (stamps and revision counts aside)."""
    out = {}
    for r in latest_receipts(receipts).values():
        lines = tuple(sorted((ln['sku'], int(ln['quantity']), int(ln['status']))
                             for ln in r.get('lines', [])))
        out[r['shopper_id']] = (lines, int(r.get('pending_reviews', 0)),
                                int(r.get('total_cents', 0)))
    return out


def read_receipts(run_dir: str | pathlib.Path) -> list[dict]:
    return read_jsonl(pathlib.Path(run_dir) / 'receipts.jsonl')


if __name__ == '__main__':
    sys.exit(main())
