"""Synthetic inputs for the cart engine tests: a small catalog, event builders, a mixed script.

A script is a list of commands in arrival order: ``('gate', GateEventData)``,
``('shelf', ShelfEventData)``, ``('decision', ReviewDecisionData)``, ``('tick', now_ns)``.
"""
from __future__ import annotations

import json

from store_cart.engine import CartEngine
from store_cart.model import (
    ACTION_NONE, ACTION_RETURN, ACTION_TAKE, GateEventData, KIND_ENTER, KIND_EXIT,
    ReviewDecisionData)
from store_common.description import Catalog, Product
from store_shelf.event import HypothesisData, ShelfEventData

S = 1_000_000_000
STORE_ID = 'test_store'

CATALOG = Catalog(currency='EUR', products={p.sku: p for p in (
    Product('COLA-330', 'Cola can 330 ml', 129, 352.0, 2.5),
    Product('LEMON-330', 'Lemon soda can 330 ml', 119, 355.0, 2.5),
    Product('WATER-500', 'Still water 500 ml', 89, 521.0, 3.0),
    Product('CHOC-DARK', 'Dark chocolate bar 100 g', 199, 106.0, 1.2),
    Product('CHOC-MILK', 'Milk chocolate bar 100 g', 179, 107.5, 1.2),
    Product('CHIPS-SALT', 'Salted crisps 150 g', 229, 162.0, 2.0),
    Product('OJ-1L', 'Orange juice 1 l', 249, 1068.0, 6.0),
)})


def ns(t_s: float) -> int:
    return int(round(t_s * S))


def enter(shopper: str, t_s: float, gate: str = 'entrance') -> GateEventData:
    return GateEventData(f'{gate}@{ns(t_s)}', gate, KIND_ENTER, shopper, ns(t_s))


def leave(shopper: str, t_s: float, gate: str = 'exit') -> GateEventData:
    return GateEventData(f'{gate}@{ns(t_s)}', gate, KIND_EXIT, shopper, ns(t_s))


def take(sku: str, p: float, q: int = 1) -> HypothesisData:
    g = -CATALOG[sku].unit_grams * q
    return HypothesisData(sku, ACTION_TAKE, q, p, g, True)


def ret(sku: str, p: float, q: int = 1) -> HypothesisData:
    g = CATALOG[sku].unit_grams * q
    return HypothesisData(sku, ACTION_RETURN, q, p, g, True)


def unknown(p: float) -> HypothesisData:
    return HypothesisData('', ACTION_TAKE, 0, p, 0.0, False)


def shelf(plate: str, start_s: float, hyps: list[HypothesisData],
          settled_s: float | None = None) -> ShelfEventData:
    settled_s = start_s + 0.6 if settled_s is None else settled_s
    delta = hyps[0].expected_grams if hyps else 0.0
    return ShelfEventData(
        event_id=f'{plate}@{ns(start_s)}', gondola_id=plate.split('.')[0],
        plate_ids=(plate,), delta_grams=delta, start_ns=ns(start_s), settled_ns=ns(settled_s),
        hypotheses=tuple(hyps), plate_delta_grams=(delta,), noise_grams=1.0)


def decide(event: ShelfEventData, shopper: str, sku: str, action: int, q: int, t_s: float,
           reviewer: str = 'alice') -> ReviewDecisionData:
    return ReviewDecisionData(f'review/{event.event_id}', reviewer, shopper, sku, action, q,
                              ns(t_s))


def feed(engine: CartEngine, script: list) -> list:
    outs = []
    for op, arg in script:
        if op == 'gate':
            outs += engine.on_gate_event(arg)
        elif op == 'shelf':
            outs += engine.on_shelf_event(arg)
        elif op == 'decision':
            outs += engine.on_review_decision(arg)
        elif op == 'tick':
            outs += engine.tick(arg)
        else:
            raise ValueError(op)
    return outs


def command_to_json(cmd) -> str:
    op, arg = cmd
    return json.dumps([op, arg if op == 'tick' else arg.to_dict()])


def command_from_json(line: str):
    op, arg = json.loads(line)
    cls = {'gate': GateEventData, 'shelf': ShelfEventData,
           'decision': ReviewDecisionData}.get(op)
    return op, (arg if cls is None else cls.from_dict(arg))


def outcome(engine: CartEngine) -> dict:
    """Receipts (every revision), carts, open reviews and every db row, JSON-normalised."""
    st = engine.state()
    return json.loads(json.dumps({
        'receipts': [r.to_dict() for r in engine.receipt_history()],
        'carts': [c.to_dict() for c in st.carts],
        'open_reviews': [r.to_dict() for r in st.open_reviews],
        'db': engine.db.dump(),
    }))


def is_write(sql: str) -> bool:
    """Whether an SQL statement (as SQLite's trace callback sees it) starts or changes a write."""
    return sql.lstrip().split(None, 1)[0].upper() in ('BEGIN', 'INSERT', 'UPDATE', 'DELETE',
                                                      'COMMIT')


def mixed_script() -> list:
    """Three visits with confirmed, pending, ambiguous, not-in-cart, no-shopper events,
    decisions before and after exit, a late enter, redeliveries, and ticks every 0.25 s."""
    a, b, c = 'acct-a', 'acct-b', 'acct-c'
    e_cola = shelf('g1.s1.p1', 2.0, [take('COLA-330', 0.97), take('LEMON-330', 0.03)])
    e_water = shelf('g1.s2.p1', 3.5, [take('WATER-500', 0.95, 2), unknown(0.05)])
    e_choc = shelf('g2.s1.p1', 5.0, [take('CHOC-DARK', 0.55), take('CHOC-MILK', 0.45)])
    e_chips = shelf('g2.s2.p1', 7.0, [take('CHIPS-SALT', 0.99), unknown(0.01)])
    e_back = shelf('g1.s1.p1', 10.0, [ret('COLA-330', 0.96), ret('LEMON-330', 0.04)])
    e_oj = shelf('g3.s1.p1', 11.0, [ret('OJ-1L', 0.98), unknown(0.02)])
    e_late = shelf('g1.s2.p1', 18.5, [take('WATER-500', 0.99)])
    e_unk = shelf('g3.s2.p1', 20.0, [unknown(0.8), take('OJ-1L', 0.2)])
    e_none = shelf('g2.s1.p2', 26.0, [take('CHOC-MILK', 0.99)])
    timed = [  # (arrival s, command)
        (1.05, ('gate', enter(a, 1.0))),
        (2.65, ('shelf', e_cola)),
        (4.15, ('shelf', e_water)),
        (5.65, ('shelf', e_choc)),
        (6.05, ('gate', enter(b, 6.0))),
        (7.65, ('shelf', e_chips)),
        (7.70, ('shelf', e_chips)),                                   # redelivered
        (9.05, ('gate', leave(b, 9.0))),
        (10.65, ('shelf', e_back)),
        (11.65, ('shelf', e_oj)),
        (12.0, ('decision', decide(e_choc, a, 'CHOC-MILK', ACTION_TAKE, 1, 12.0))),
        (13.05, ('gate', leave(a, 13.0))),
        (17.0, ('decision', decide(e_chips, b, 'CHIPS-SALT', ACTION_TAKE, 1, 17.0))),
        (17.5, ('decision', decide(e_oj, a, 'OJ-1L', ACTION_RETURN, 1, 17.5))),
        (19.15, ('shelf', e_late)),
        (19.30, ('gate', enter(c, 18.2))),                            # late enter
        (20.65, ('shelf', e_unk)),
        (22.05, ('gate', leave(c, 22.0))),
        (22.10, ('gate', leave(c, 22.0))),                            # redelivered
        (26.65, ('shelf', e_none)),
        (28.5, ('decision', decide(e_none, '', '', ACTION_NONE, 0, 28.5))),
        (28.0, ('decision', decide(e_unk, c, 'OJ-1L', ACTION_TAKE, 1, 28.0))),
    ]
    ticks = [(k * 0.25 + 1e-6, ('tick', ns(k * 0.25))) for k in range(1, 121)]
    return [cmd for _, cmd in sorted(timed + ticks, key=lambda x: x[0])]
