"""bag_info: print a bag's topics, types, message counts and duration (like ``ros2 bag info``).

    bag_info out/bags/demo [--verify]
"""
from __future__ import annotations

import argparse
import sys

from store_bags.bag import BagError, BagReader, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='bag_info', description=__doc__.split('\n\n')[0])
    ap.add_argument('bag', help='bag directory (with metadata.yaml)')
    ap.add_argument('--verify', action='store_true',
                    help='also read and deserialize every message')
    args = ap.parse_args(argv)
    try:
        with BagReader(args.bag) as reader:
            print(summary(reader))
            if args.verify:
                print(f'Verified:          {reader.verify()} messages')
    except BagError as exc:
        print(f'bag_info: error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
