"""Serve a run's review database with the reviewer console on its own, without the node graph.

    review_console --db out/demo/review.sqlite [--store config/stores/demo.yaml] [--port 8080]
                   [--cart-db out/demo/carts.sqlite]

The same console (``console.py``) and service (``service.py``) as the review node, over the
same database: a reviewer can look at the evidence and decide after the run has ended.

Where the decisions go: with ``--cart-db`` (the run's cart database; only while no graph runs
on it) and ``--store``, each decision is applied to the carts right away by the cart's own
engine (``store_cart.engine``: the same candidate check, the same corrected receipt revision
as the live cart node), and its acknowledgement is recorded. Without it, a decision is stored
as not yet acknowledged, and the review node publishes it again when the store's graph next
starts on this database (as it does for every decision the cart has not acknowledged).
Ctrl-C stops it.

A port that is taken is an error naming it (exit 2); ``--port 0`` picks a free one (printed,
and written to ``--url-file`` when given).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import signal
import sys
import threading
import time

from store_review.console import ConsoleServer, create_app, PageInfo, PortTaken
from store_review.review_node import DEFAULT_DB_PATH
from store_review.service import ReviewService
from store_review.store import QueueParams, ReviewDbError, ReviewStore


class OfflineCart:
    """The cart's engine on a run's cart database, for decisions made after the run: each is
    checked and applied as the cart node would (``CartEngine.on_review_decision``). ``apply``
    (the service's publish, on a web worker thread) only queues the decision; ``deliver`` (the
    main thread, which owns the cart database connection) applies the queue and hands the
    acknowledgements and corrected receipts to the review service, as the node's topics
    would."""

    def __init__(self, cart_db: str, store_file: str):
        from store_cart.engine import CartEngine
        from store_common.description import load_store
        store = load_store(store_file)
        self.engine = CartEngine(cart_db, store.catalog, store.id)
        self.lock = threading.Lock()
        self.inbox: list = []

    def apply(self, decision) -> None:
        with self.lock:
            self.inbox.append(decision)

    def deliver(self, service: ReviewService) -> None:
        from store_cart.model import DecisionAckData, ReceiptData
        with self.lock:
            decisions, self.inbox = self.inbox, []
        outs = [o for d in decisions for o in self.engine.on_review_decision(d)]
        for o in outs:
            if isinstance(o, DecisionAckData):
                outcome = service.on_ack(o.request_id, o.reviewer_id, o.status, o.reason)
                print(f'cart {outcome} the decision on {o.request_id}'
                      f'{": " + o.reason if o.reason else ""}', flush=True)
            elif isinstance(o, ReceiptData):
                service.store.add_receipt({
                    'receipt_id': o.receipt_id, 'revision': o.revision,
                    'shopper_id': o.shopper_id, 'total_cents': o.total_cents,
                    'pending_reviews': o.pending_reviews, 'currency': o.currency,
                    'correction_note': o.correction_note, 'exited_ns': o.exited_ns,
                    'lines': [{'sku': ln.sku, 'quantity': ln.quantity, 'status': ln.status}
                              for ln in o.lines]})
                print(f'receipt {o.receipt_id} revision {o.revision}: '
                      f'{o.total_cents / 100:.2f} {o.currency}, {o.pending_reviews} pending'
                      f'{" (" + o.correction_note + ")" if o.correction_note else ""}',
                      flush=True)

    def close(self) -> None:
        self.engine.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='review_console', description=__doc__.split('\n')[0])
    ap.add_argument('--db', default=DEFAULT_DB_PATH, help='review database (default: %(default)s)')
    ap.add_argument('--store', help='store description YAML (currency, cameras): what the '
                                    'pages say about money and camera evidence')
    ap.add_argument('--host', default='127.0.0.1', help='address to listen on (default '
                                                        '%(default)s)')
    ap.add_argument('--port', type=int, default=8080, help='TCP port (default %(default)s; 0 '
                                                           'picks a free one)')
    ap.add_argument('--url-file', help='write the console URL here once it listens')
    ap.add_argument('--cart-db', help='apply decisions to this cart database now (needs '
                                      '--store; only while no graph runs on it)')
    ap.add_argument('--session-ttl-s', type=float, default=8 * 3600.0)
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f'review_console: --port {args.port} is not a port (0..65535)', file=sys.stderr)
        return 2
    db_path = os.path.expanduser(args.db)
    if not pathlib.Path(db_path).is_file():
        print(f'review_console: no review database at {db_path} (a run writes one beside its '
              'cart database: <run dir>/review.sqlite)', file=sys.stderr)
        return 2
    try:
        info = PageInfo.from_store_file(args.store) if args.store else PageInfo()
    except (OSError, ValueError) as exc:
        print(f'review_console: --store {args.store}: {exc}', file=sys.stderr)
        return 2
    if args.cart_db and not (args.store and pathlib.Path(args.cart_db).is_file()):
        print('review_console: --cart-db needs --store and an existing cart database',
              file=sys.stderr)
        return 2
    try:
        store = ReviewStore(db_path, QueueParams())
    except ReviewDbError as exc:
        print(f'review_console: {exc}', file=sys.stderr)
        return 2
    cart = OfflineCart(args.cart_db, args.store) if args.cart_db else None
    service = ReviewService(store, cart.apply if cart else (lambda decision: None),
                            time.time_ns, args.session_ttl_s)
    try:
        server = ConsoleServer(create_app(service, page_info=info), args.host, args.port)
    except PortTaken as exc:
        print(f'review_console: {exc}', file=sys.stderr)
        store.close()
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    if args.url_file:
        pathlib.Path(args.url_file).write_text(server.url + '\n')
    users = len(store.users())
    where = (f'decisions are applied to the carts in {args.cart_db} at once' if cart else
             'decisions reach the carts when the store graph next runs on this database')
    print(f'review console on {server.url} (database {db_path}, {users} accounts'
          f'{"; add one with: review_users --db " + db_path + " add NAME" if not users else ""}'
          f'); {where}. Ctrl-C stops it.', flush=True)
    try:
        while not stop.wait(0.5):
            if cart:
                cart.deliver(service)
            service.sweep()
    finally:
        server.stop()
        store.close()
        if cart:
            cart.close()
    print('review console stopped', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
