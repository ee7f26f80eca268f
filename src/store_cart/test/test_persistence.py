"""Durability of the cart database: idempotent redelivery, restarts, SIGKILL, bad files."""
from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from cart_helpers import (CATALOG, command_to_json, feed, is_write, mixed_script, outcome,
                          STORE_ID)
from store_cart.db import CartDb, CartDbError, SCHEMA_VERSION
from store_cart.engine import CartEngine
from store_cart.model import ACK_APPLIED, DecisionAckData, ReceiptData

HERE = pathlib.Path(__file__).resolve().parent


def run_once(path) -> dict:
    with CartEngine(str(path), CATALOG, STORE_ID) as engine:
        feed(engine, mixed_script())
        return outcome(engine)


@pytest.fixture(scope='module')
def reference(tmp_path_factory) -> dict:
    return run_once(tmp_path_factory.mktemp('ref') / 'ref.sqlite')


def test_reference_run_is_meaningful(reference):
    receipts = [ReceiptData.from_dict(r) for r in reference['receipts']]
    assert {r.shopper_id for r in receipts} == {'acct-a', 'acct-b', 'acct-c'}
    assert max(r.revision for r in receipts) >= 2
    assert reference['open_reviews'] == []
    assert all(rows for table, rows in reference['db'].items())


def test_replaying_the_whole_script_twice_changes_nothing(tmp_path, reference):
    with CartEngine(str(tmp_path / 'twice.sqlite'), CATALOG, STORE_ID) as engine:
        feed(engine, mixed_script())
        again = [o for o in feed(engine, mixed_script()) if not isinstance(o, str)]
        # the decisions are confirmed again (the review node re-sends until confirmed); nothing
        # else is published
        assert again and all(isinstance(o, DecisionAckData) and o.status == ACK_APPLIED
                             for o in again)
        assert outcome(engine) == reference


def test_every_input_delivered_twice_gives_the_same_db(tmp_path, reference):
    doubled = [cmd for cmd in mixed_script() for _ in range(2)]
    with CartEngine(str(tmp_path / 'double.sqlite'), CATALOG, STORE_ID) as engine:
        feed(engine, doubled)
        assert outcome(engine) == reference


def test_reopening_between_inputs_gives_the_same_outcome(tmp_path, reference):
    path = str(tmp_path / 'reopen.sqlite')
    for cmd in mixed_script():
        with CartEngine(path, CATALOG, STORE_ID) as engine:
            feed(engine, [cmd])
    with CartEngine(path, CATALOG, STORE_ID) as engine:
        assert outcome(engine) == reference


def _writer(proc, lines):
    try:
        for ln in lines:
            proc.stdin.write(ln + '\n')
            proc.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass   # the child was killed


def _child(db_path, *args):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(HERE)] + sys.path)
    return subprocess.Popen([sys.executable, str(HERE / 'cart_crash_driver.py'), str(db_path),
                             *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, bufsize=1)


@pytest.fixture(scope='module')
def writes_per_run(tmp_path_factory) -> int:
    """How many writing SQL statements an uninterrupted run of the script executes."""
    with CartEngine(str(tmp_path_factory.mktemp('n') / 'n.sqlite'), CATALOG, STORE_ID) as eng:
        n = [0]
        eng.db._conn.set_trace_callback(lambda sql: n.__setitem__(0, n[0] + is_write(sql)))
        feed(eng, mixed_script())
        return n[0]


def _run_child(db_path, lines, rng, kill_at=None, kill_after=None):
    """Feed ``lines`` then "dump" to a child; returns (dump or None, acked, returncode)."""
    proc = _child(db_path, *([] if kill_at is None else [kill_at]))
    threading.Thread(target=_writer, args=(proc, lines + ['dump']), daemon=True).start()
    acked, result = 0, None
    while kill_after is None or acked < kill_after:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith('{'):
            result = json.loads(line)
            break
        acked += 1
    if kill_after is not None:
        time.sleep(rng.uniform(0.0, 0.004))   # land inside the next command
        proc.kill()                           # SIGKILL from outside
    else:
        proc.stdin.close()
    proc.wait(timeout=60)
    return result, acked, proc.returncode


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_sigkill_at_random_points_loses_and_doubles_nothing(tmp_path, reference, seed,
                                                            writes_per_run):
    """SIGKILL the engine process again and again (once from outside after a random number of
    commands, then from inside at a random writing SQL statement, which lands in transactions),
    restarting it on the same file and re-feeding every input each time, as transient-local DDS
    redelivers them, until a run completes: it must equal the uninterrupted run, db rows
    included."""
    rng = random.Random(seed)
    lines = [command_to_json(c) for c in mixed_script()]
    db_path = tmp_path / f'crash{seed}.sqlite'
    result, acked, rc = _run_child(db_path, lines, rng, kill_after=rng.randrange(len(lines) // 2))
    assert rc == -signal.SIGKILL and acked < len(lines) and result is None
    kills = 1
    max_step = max(2, writes_per_run // 6)   # about a dozen kills per run
    while result is None:
        result, acked, rc = _run_child(db_path, lines, rng,
                                       kill_at=rng.randrange(1, max_step))
        if result is None:
            assert rc == -signal.SIGKILL
            kills += 1
        assert kills < 100
    assert kills >= 3
    assert result['receipts'] == reference['receipts']
    assert result == reference


def test_a_corrupt_file_raises_naming_the_file(tmp_path):
    bad = tmp_path / 'garbage.sqlite'
    bad.write_bytes(b'this is not a database, it is a shopping list\n' * 100)
    with pytest.raises(CartDbError) as exc:
        CartEngine(str(bad), CATALOG, STORE_ID)
    assert str(bad) in str(exc.value) and 'not a valid cart database' in str(exc.value)


def test_a_foreign_database_raises_naming_the_file(tmp_path):
    other = tmp_path / 'other.sqlite'
    with sqlite3.connect(other) as c:
        c.execute('CREATE TABLE shopping (item TEXT)')
    with pytest.raises(CartDbError, match=f'{other}: not a cart database'):
        CartDb(other)


def test_a_schema_version_mismatch_raises(tmp_path):
    path = tmp_path / 'old.sqlite'
    CartDb(path).close()
    with sqlite3.connect(path) as c:
        c.execute('UPDATE schema_version SET version = ?', (SCHEMA_VERSION + 1,))
    with pytest.raises(CartDbError, match=f'{path}: cart database schema version '
                                          f'{SCHEMA_VERSION + 1}, this code needs'):
        CartDb(path)


def test_db_settings(tmp_path):
    db = CartDb(tmp_path / 'sub' / 'dir' / 'x.sqlite')   # parents are created
    c = db._conn
    assert c.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    assert c.execute('PRAGMA synchronous').fetchone()[0] == 2      # FULL
    assert c.execute('PRAGMA foreign_keys').fetchone()[0] == 1
    with pytest.raises(RuntimeError, match='outside a transaction'):
        db.add_session('x@1', 'x', 1)
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction():
            db.add_line('nobody@1', 'COLA-330', 1, 'confirmed', 'e')   # no such session
    db.close()
