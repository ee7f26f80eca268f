"""Reviewer accounts of the review console.

    review_users --db PATH add [--role reviewer|supervisor] NAME   # password: $REVIEW_PASSWORD
                                                                  # or the first line of stdin
    review_users --db PATH list
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from store_review.auth import Auth
from store_review.review_node import DEFAULT_DB_PATH
from store_review.store import ReviewDbError, ReviewStore, ROLES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='review_users', description=__doc__.split('\n')[0])
    ap.add_argument('--db', default=DEFAULT_DB_PATH, help='review database (default: %(default)s)')
    sub = ap.add_subparsers(dest='cmd', required=True)
    add = sub.add_parser('add', help='add a user or reset their role and password')
    add.add_argument('--role', choices=ROLES, default='reviewer')
    add.add_argument('name')
    sub.add_parser('list', help='list users and roles')
    args = ap.parse_args(argv)
    try:
        store = ReviewStore(os.path.expanduser(args.db))
    except ReviewDbError as exc:
        print(f'review_users: {exc}', file=sys.stderr)
        return 2
    try:
        if args.cmd == 'list':
            for u in store.users():
                print(f'{u["name"]}\t{u["role"]}')
            return 0
        password = os.environ.get('REVIEW_PASSWORD')
        if password is None:
            if sys.stdin.isatty():
                import getpass
                password = getpass.getpass(f'password for {args.name}: ')
            else:
                password = sys.stdin.readline().rstrip('\r\n')
        try:
            Auth(store).add_user(args.name, args.role, password, time.time_ns())
        except ValueError as exc:
            print(f'review_users: {exc}', file=sys.stderr)
            return 2
        print(f'{args.name}: {args.role}')
        return 0
    finally:
        store.close()


if __name__ == '__main__':
    sys.exit(main())
