"""Child process for the crash-safety test: feeds commands read from stdin to a CartEngine.

Usage: ``python cart_crash_driver.py DB_PATH [KILL_AT_STATEMENT]``. Each stdin line is a command
as written by ``cart_helpers.command_to_json`` or ``"dump"``; after each command it prints ``ok``
(or the outcome as JSON for ``dump``) and flushes, so the parent knows how far it got. With
KILL_AT_STATEMENT the process SIGKILLs itself when SQLite starts its n-th writing statement
(BEGIN, INSERT, UPDATE, DELETE, COMMIT) of this run, which lands kills inside transactions.
Redelivered inputs write nothing, so a restarted run counts only the work still to do.
"""
import json
import os
import signal
import sys

from cart_helpers import CATALOG, command_from_json, feed, is_write, outcome, STORE_ID
from store_cart.engine import CartEngine


def main() -> int:
    engine = CartEngine(sys.argv[1], CATALOG, STORE_ID)
    if len(sys.argv) > 2:
        kill_at = int(sys.argv[2])
        count = [0]

        def trace(sql):
            if not is_write(sql):
                return
            count[0] += 1
            if count[0] >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        engine.db._conn.set_trace_callback(trace)
    for raw in sys.stdin:
        raw = raw.strip()
        if not raw:
            continue
        if raw == 'dump':
            sys.stdout.write(json.dumps(outcome(engine)) + '\n')
        else:
            feed(engine, [command_from_json(raw)])
            sys.stdout.write('ok\n')
        sys.stdout.flush()
    engine.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
