"""Print the receipts the receipt recorder wrote (``receipts.jsonl``) as a shopper sees them.

    python -m store_bringup.report receipts out/demo/receipts.jsonl
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

PENDING = 2


def latest(receipts: list[dict]) -> list[dict]:
    """The highest revision of each receipt id, in order of first issue."""
    out: dict[str, dict] = {}
    for r in receipts:
        if r['receipt_id'] not in out or r['revision'] > out[r['receipt_id']]['revision']:
            out[r['receipt_id']] = r
    return list(out.values())


def format_receipt(r: dict) -> str:
    cur = r.get('currency', '')
    rows = [f'Receipt {r["receipt_id"]}  (revision {r["revision"]})',
            f'  shopper {r["shopper_id"]}']
    for ln in r['lines']:
        mark = '  [under review]' if ln['status'] == PENDING else ''
        unit, total = ln['unit_price_cents'] / 100, ln['line_total_cents'] / 100
        rows.append(f'  {ln["quantity"]:>3} x {ln["name"]:<32} {unit:>7.2f} {total:>8.2f} '
                    f'{cur}{mark}')
    if not r['lines']:
        rows.append('  (nothing bought)')
    rows.append(f'  {"total":>38} {r["total_cents"] / 100:>16.2f} {cur}')
    if r.get('pending_reviews'):
        rows.append(f'  {r["pending_reviews"]} item(s) waiting for a reviewer; the receipt will '
                    f'be corrected if needed')
    if r.get('correction_note'):
        rows.append(f'  correction: {r["correction_note"]}')
    return '\n'.join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='report', description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='what', required=True)
    rec = sub.add_parser('receipts', help='print the latest revision of every receipt')
    rec.add_argument('path', type=pathlib.Path)
    args = ap.parse_args(argv)
    if not args.path.exists():
        print(f'report: {args.path}: no such file', file=sys.stderr)
        return 2
    receipts = []
    for n, line in enumerate(args.path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            receipts.append(json.loads(line))
        except json.JSONDecodeError as exc:
            print(f'report: {args.path}:{n}: not JSON ({exc}); skipped', file=sys.stderr)
    for r in latest(receipts):
        print(format_receipt(r))
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
