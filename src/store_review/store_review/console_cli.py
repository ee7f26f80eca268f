"""Serve a run's review database with the reviewer console on its own, without the node graph.

    review_console --db out/demo/review.sqlite [--store config/stores/demo.yaml] [--port 8080]

The same console (``console.py``) and service (``service.py``) as the review node, over the
same database: a reviewer can look at the evidence and decide after the run has ended. With no
graph running, a decision cannot reach the cart now: it is stored as not yet acknowledged, and
the review node publishes it again when the store's graph next starts on this database (as it
does for every decision the cart has not acknowledged). Ctrl-C stops it.

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
    try:
        store = ReviewStore(db_path, QueueParams())
    except ReviewDbError as exc:
        print(f'review_console: {exc}', file=sys.stderr)
        return 2
    service = ReviewService(store, lambda decision: None, time.time_ns, args.session_ttl_s)
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
    print(f'review console on {server.url} (database {db_path}, {users} accounts'
          f'{"; add one with: review_users --db " + db_path + " add NAME" if not users else ""}'
          '); decisions made now reach the cart when the store graph next runs on this '
          'database. Ctrl-C stops it.', flush=True)
    try:
        while not stop.wait(2.0):
            service.sweep()
    finally:
        server.stop()
        store.close()
    print('review console stopped', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
