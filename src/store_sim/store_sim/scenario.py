"""Scenarios: who enters, takes and returns what, where and when (see docs/ARCHITECTURE.md).

A scenario file is YAML or JSON with a top-level ``scenario`` mapping. :func:`load_scenario`
parses it and, given the store, validates it against the store layout, the planogram's inventory
and the physical rules of the simulator. Every problem is a :class:`ScenarioError` naming the
file, the field path and what is wrong, e.g.
``scenarios/x.yaml: scenario.shoppers[1].actions[2].plate: unknown plate 'g9.s1.p1'``.

This module never imports rclpy.
"""
from __future__ import annotations

import json
import math
import pathlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import yaml

from store_common import strict_yaml
from store_common.errors import FileFieldError

ACCOUNT_RE = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
KINDS = ('take', 'return')
DEFAULT_REACH_S = 0.8
MIN_PLATE_GAP_S = 3.0   # two actions on one plate (or its straddle partner) at least this apart


class ScenarioError(FileFieldError):
    """A scenario is invalid. ``str()`` reads ``file: field.path: what is wrong``."""


@dataclass
class Action:
    t_s: float                    # when the hand leaves the plate [s, scenario clock]
    kind: str                     # "take" or "return"
    plate: str                    # plate id, e.g. "g1.s1.p1"
    sku: str                      # product SKU
    quantity: int = 1             # units [units], >= 1
    straddle: str | None = None   # adjacent plate the item rests across (weight split), or None
    reach_s: float | None = None  # hand arrives this long before t_s [s]; None = default 0.8

    @property
    def plates(self) -> tuple[str, ...]:
        return (self.plate, self.straddle) if self.straddle else (self.plate,)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {'t_s': round(float(self.t_s), 3), 'kind': self.kind,
                             'plate': self.plate, 'sku': self.sku,
                             'quantity': int(self.quantity)}
        if self.straddle:
            d['straddle'] = self.straddle
        if self.reach_s is not None:
            d['reach_s'] = round(float(self.reach_s), 3)
        return d


@dataclass
class Shopper:
    id: str                       # account id scanned at the gates
    enter_s: float                # entrance scan [s, scenario clock]
    exit_s: float                 # exit scan [s, scenario clock]
    actions: list[Action] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {'id': self.id, 'enter_s': round(float(self.enter_s), 3),
                'exit_s': round(float(self.exit_s), 3),
                'actions': [a.to_dict() for a in self.actions]}


@dataclass
class Scenario:
    store: str                    # store id the scenario is written for
    seed: int
    duration_s: float             # the simulator stops emitting truth after this [s]
    shoppers: list[Shopper] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # free-form (generator level, knobs); optional

    def to_dict(self) -> dict:
        d: dict[str, Any] = {'store': self.store, 'seed': int(self.seed),
                             'duration_s': round(float(self.duration_s), 3),
                             'shoppers': [s.to_dict() for s in self.shoppers]}
        if self.meta:
            d['meta'] = self.meta
        return {'scenario': d}

    def shopper(self, shopper_id: str) -> Shopper:
        for s in self.shoppers:
            if s.id == shopper_id:
                return s
        raise KeyError(shopper_id)


# --- parsing ----------------------------------------------------------------------------------
class _Ctx:
    def __init__(self, file: str):
        self.file = file

    def fail(self, path: str, message: str) -> ScenarioError:
        return ScenarioError(self.file, path, message)

    def mapping(self, node: Any, path: str) -> dict:
        if not isinstance(node, dict):
            raise self.fail(path, f'expected a mapping, got {type(node).__name__}')
        return node

    def get(self, node: dict, key: str, path: str, default: Any = ...) -> Any:
        if key not in node or node[key] is None:
            if default is ...:
                raise self.fail(f'{path}.{key}', 'missing required field')
            return default
        return node[key]

    def num(self, node: dict, key: str, path: str, default: Any = ..., *,
            integer: bool = False) -> float:
        v = self.get(node, key, path, default)
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(f'{path}.{key}', f'expected a finite number, got {v!r}')
        if integer:
            if not float(v).is_integer():
                raise self.fail(f'{path}.{key}', f'expected an integer, got {v!r}')
            return int(v)
        return float(v)

    def text(self, node: dict, key: str, path: str, default: Any = ...) -> str:
        v = self.get(node, key, path, default)
        if v is None:
            return v
        if not isinstance(v, str) or not v:
            raise self.fail(f'{path}.{key}', f'expected a non-empty string, got {v!r}')
        return v


def scenario_from_dict(doc: Any, file: str = '') -> Scenario:
    """Parse the structure of a scenario document (no store checks). Raises ScenarioError."""
    ctx = _Ctx(file)
    root = ctx.mapping(ctx.get(ctx.mapping(doc, ''), 'scenario', ''), 'scenario')
    sp = 'scenario'
    shoppers_doc = ctx.get(root, 'shoppers', sp)
    if not isinstance(shoppers_doc, list):
        raise ctx.fail(f'{sp}.shoppers', 'expected a list')
    shoppers = []
    for i, s in enumerate(shoppers_doc):
        p = f'{sp}.shoppers[{i}]'
        s = ctx.mapping(s, p)
        actions = []
        actions_doc = ctx.get(s, 'actions', p, [])
        if not isinstance(actions_doc, list):
            raise ctx.fail(f'{p}.actions', 'expected a list')
        for j, a in enumerate(actions_doc):
            ap = f'{p}.actions[{j}]'
            a = ctx.mapping(a, ap)
            actions.append(Action(
                t_s=ctx.num(a, 't_s', ap), kind=ctx.text(a, 'kind', ap),
                plate=ctx.text(a, 'plate', ap), sku=ctx.text(a, 'sku', ap),
                quantity=ctx.num(a, 'quantity', ap, 1, integer=True),
                straddle=ctx.text(a, 'straddle', ap, None),
                reach_s=ctx.num(a, 'reach_s', ap, None)))
        sid = ctx.get(s, 'id', p)
        shoppers.append(Shopper(id=str(sid), enter_s=ctx.num(s, 'enter_s', p),
                                exit_s=ctx.num(s, 'exit_s', p), actions=actions))
    meta = root.get('meta') or {}
    return Scenario(store=ctx.text(root, 'store', sp), seed=ctx.num(root, 'seed', sp, 0,
                                                                    integer=True),
                    duration_s=ctx.num(root, 'duration_s', sp), shoppers=shoppers,
                    meta=meta if isinstance(meta, dict) else {})


def validate(scenario: Scenario, store=None, file: str = '') -> None:
    """Check a scenario's own consistency and, with a store, its fit to the store.

    Raises the first :class:`ScenarioError` found.
    """
    ctx = _Ctx(file)
    sp = 'scenario'
    if scenario.duration_s <= 0:
        raise ctx.fail(f'{sp}.duration_s', f'must be > 0, got {scenario.duration_s}')
    if store is not None and scenario.store != store.id:
        raise ctx.fail(f'{sp}.store', f'scenario is for store {scenario.store!r}, '
                                      f'not {store.id!r}')
    seen: set[str] = set()
    for i, s in enumerate(scenario.shoppers):
        p = f'{sp}.shoppers[{i}]'
        if not ACCOUNT_RE.match(s.id):
            raise ctx.fail(f'{p}.id', f'{s.id!r} does not match {ACCOUNT_RE.pattern}')
        if s.id in seen:
            raise ctx.fail(f'{p}.id', f'duplicate shopper id {s.id!r}')
        seen.add(s.id)
        if s.enter_s < 0:
            raise ctx.fail(f'{p}.enter_s', f'must be >= 0, got {s.enter_s}')
        if s.exit_s <= s.enter_s:
            raise ctx.fail(f'{p}.exit_s', f'exit {s.exit_s} s is not after enter {s.enter_s} s')
        if s.exit_s > scenario.duration_s:
            raise ctx.fail(f'{p}.exit_s', f'exit {s.exit_s} s is after the scenario end '
                                          f'({scenario.duration_s} s)')
        prev_t = s.enter_s
        held: Counter = Counter()
        for j, a in enumerate(s.actions):
            ap = f'{p}.actions[{j}]'
            if a.kind not in KINDS:
                raise ctx.fail(f'{ap}.kind', f'{a.kind!r} is not one of {", ".join(KINDS)}')
            if a.quantity < 1:
                raise ctx.fail(f'{ap}.quantity', f'must be >= 1, got {a.quantity}')
            if a.reach_s is not None and not 0.0 < a.reach_s <= 5.0:
                raise ctx.fail(f'{ap}.reach_s', f'must be in (0, 5] s, got {a.reach_s}')
            if not s.enter_s <= a.t_s <= s.exit_s:
                raise ctx.fail(f'{ap}.t_s', f'{a.t_s} s is outside the visit '
                                            f'({s.enter_s}..{s.exit_s} s)')
            if a.t_s < prev_t:
                raise ctx.fail(f'{ap}.t_s', f'{a.t_s} s is before the previous action '
                                            f'({prev_t} s): actions must be in time order')
            prev_t = a.t_s
            if a.straddle is not None and a.straddle == a.plate:
                raise ctx.fail(f'{ap}.straddle', 'a plate cannot straddle itself')
            if store is not None:
                plates = store.plates
                if a.plate not in plates:
                    raise ctx.fail(f'{ap}.plate', f'unknown plate {a.plate!r}')
                if a.sku not in store.catalog:
                    raise ctx.fail(f'{ap}.sku', f'unknown sku {a.sku!r}')
                if a.straddle is not None:
                    if a.straddle not in plates:
                        raise ctx.fail(f'{ap}.straddle', f'unknown plate {a.straddle!r}')
                    if a.straddle not in store.adjacent_plates(a.plate):
                        raise ctx.fail(f'{ap}.straddle', f'plate {a.straddle} is not adjacent '
                                                         f'to plate {a.plate}')
            if a.kind == 'take':
                held[a.sku] += a.quantity
            else:
                if held[a.sku] < a.quantity:
                    raise ctx.fail(f'{ap}.sku', f'shopper {s.id} returns {a.quantity} x '
                                                f'{a.sku} but holds {held[a.sku]}')
                held[a.sku] -= a.quantity

    # cross-shopper checks in store time order: plate spacing and inventory
    timeline = sorted(((a.t_s, i, j, a) for i, s in enumerate(scenario.shoppers)
                       for j, a in enumerate(s.actions)), key=lambda x: (x[0], x[1], x[2]))
    last_on_plate: dict[str, tuple[float, str]] = {}
    stock: dict[str, Counter] = defaultdict(Counter)
    if store is not None:
        for pid, entry in store.planogram.items():
            stock[pid][entry.sku] = entry.initial_units
    for t, i, j, a in timeline:
        ap = f'{sp}.shoppers[{i}].actions[{j}]'
        for pid in a.plates:
            if pid in last_on_plate and t - last_on_plate[pid][0] < MIN_PLATE_GAP_S - 1e-9:
                prev_t, prev_path = last_on_plate[pid]
                raise ctx.fail(f'{ap}.t_s', f'{t} s is {t - prev_t:.2f} s after {prev_path} '
                                            f'on plate {pid}; actions on one plate must be '
                                            f'>= {MIN_PLATE_GAP_S:g} s apart')
        for pid in a.plates:
            last_on_plate[pid] = (t, ap)
        if store is None:
            continue
        units = stock[a.plate]
        if a.kind == 'take':
            if units[a.sku] < a.quantity:
                raise ctx.fail(f'{ap}.quantity', f'plate {a.plate} has {units[a.sku]} x '
                                                 f'{a.sku} left at {t} s, cannot take '
                                                 f'{a.quantity}')
            units[a.sku] -= a.quantity
        else:
            units[a.sku] += a.quantity
            entry = store.planogram.get(a.plate)
            if entry is not None and entry.sku == a.sku and units[a.sku] > entry.capacity_units:
                raise ctx.fail(f'{ap}.quantity', f'plate {a.plate} would hold {units[a.sku]} x '
                                                 f'{a.sku}, more than its capacity of '
                                                 f'{entry.capacity_units}')
            grams = sum(store.catalog[k].unit_grams * n for k, n in units.items())
            cap_g = store.plate(a.plate).load_cell.capacity_grams
            if grams > cap_g:
                raise ctx.fail(f'{ap}.quantity', f'plate {a.plate} would carry {grams:.0f} g, '
                                                 f'more than its load cell capacity ({cap_g} g)')


# --- files ------------------------------------------------------------------------------------
def load_scenario(path: str | pathlib.Path, store=None) -> Scenario:
    """Load a YAML or JSON scenario and validate it (against ``store`` when given)."""
    path = pathlib.Path(path)
    file = str(path)
    if not path.is_file():
        raise ScenarioError(file, '', 'file not found')
    try:
        # strict: a duplicate key, nesting deeper than strict_yaml allows or bytes that are
        # not UTF-8 are errors naming the line (or byte offset), never a silent last-one-wins
        text = strict_yaml.decode_utf8(file, path.read_bytes())
        doc = (json.loads(text) if path.suffix.lower() == '.json'
               else strict_yaml.loads(text, file).data)
    except strict_yaml.YamlError as exc:
        raise ScenarioError(file, '', f'cannot parse: {exc.where_message()}') from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(file, '', f'cannot parse: {exc}') from None
    scenario = scenario_from_dict(doc, file)
    validate(scenario, store, file)
    return scenario


def save_scenario(scenario: Scenario, path: str | pathlib.Path) -> None:
    """Write a scenario as JSON (``.json``) or YAML (anything else)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = scenario.to_dict()
    if path.suffix.lower() == '.json':
        path.write_text(json.dumps(doc, indent=2) + '\n')
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None,
                                       width=120))


# --- truth ------------------------------------------------------------------------------------
def truth_receipts(scenario: Scenario) -> dict[str, dict[str, int]]:
    """{shopper_id: {sku: quantity}}: takes minus returns per SKU, zero lines dropped."""
    out: dict[str, dict[str, int]] = {}
    for s in scenario.shoppers:
        c: Counter = Counter()
        for a in s.actions:
            c[a.sku] += a.quantity if a.kind == 'take' else -a.quantity
        out[s.id] = {sku: n for sku, n in sorted(c.items()) if n != 0}
    return out


def truth_events(scenario: Scenario, store=None) -> list[dict]:
    """Every enter, action and exit as a JSON-ready dict, in scenario time order.

    Ground truth as the simulator publishes it on ``sim/ground_truth``. With a store, enter and
    exit name the first entrance and exit gate.
    """
    entrance = exit_gate = ''
    if store is not None:
        entrance = next(g.id for g in store.gates if g.kind == 'entrance')
        exit_gate = next(g.id for g in store.gates if g.kind == 'exit')
    events = []
    for i, s in enumerate(scenario.shoppers):
        events.append((s.enter_s, 0, i, {'event': 'enter', 't_s': s.enter_s,
                                         'shopper_id': s.id, 'gate_id': entrance}))
        for j, a in enumerate(s.actions):
            d = {'event': 'action', 'shopper_id': s.id}
            d.update(a.to_dict())
            events.append((a.t_s, 1, i * 10000 + j, d))
        events.append((s.exit_s, 2, i, {'event': 'exit', 't_s': s.exit_s,
                                        'shopper_id': s.id, 'gate_id': exit_gate}))
    events.sort(key=lambda e: e[:3])
    return [e[3] for e in events]
