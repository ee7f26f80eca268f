"""TransactionalDb on real files: damaged pages, a full disk, unusable folders.

Each failure is produced for real (bytes overwritten on disk, ``PRAGMA max_page_count``, a tmpfs
mounted when the test runs as root), never by mocking sqlite. The cart and the review databases
are checked through their own classes, since both inherit the behaviour.
"""
from __future__ import annotations

import os
import pathlib
import sqlite3
import subprocess

import pytest

from store_common import fatal
from toy_db import ToyDb as _ToyDb, ToyError


class ToyDb(_ToyDb):
    """ToyDb with rows to add and count."""

    def add(self, body: str) -> None:
        self._w('INSERT INTO rows (body) VALUES (?)', (body,))

    def count(self) -> int:
        return self._conn.execute('SELECT COUNT(*) FROM rows').fetchone()[0]


def _cart_db(path):
    db_mod = pytest.importorskip('store_cart.db')
    db = db_mod.CartDb(path)
    return db, lambda i: db.add_event(f'e{i}', 'shelf', i, {'pad': 'x' * 300}, 'queued')


def _review_db(path):
    store = pytest.importorskip('store_review.store')
    db = store.ReviewStore(path)
    return db, lambda i: db.audit(i, 'system', 'received', f'r{i}', 'x' * 300)


def _toy_db(path):
    db = ToyDb(path)
    return db, lambda i: db.add(f'{i:06d}' + 'x' * 300)


OPENERS = {'toy': _toy_db, 'cart': _cart_db, 'review': _review_db}
ADDED_ROWS = {'toy': 'SELECT COUNT(*) FROM rows', 'cart': 'SELECT COUNT(*) FROM events',
              'review': "SELECT COUNT(*) FROM audit WHERE request_id LIKE 'r%'"}


@pytest.fixture(autouse=True)
def _no_reported_fatal():
    fatal.clear()
    yield
    fatal.clear()


def _fill(opener, path, rows: int) -> type:
    db, add = opener(path)
    with db.transaction():
        for i in range(rows):
            add(i)
    error = db.Error
    db.close()
    return error


def _damage_middle_page(path: pathlib.Path) -> int:
    """Overwrite the first 64 bytes of the middle page (its b-tree header); returns its number."""
    with sqlite3.connect(path) as c:
        page_size = c.execute('PRAGMA page_size').fetchone()[0]
        pages = c.execute('PRAGMA page_count').fetchone()[0]
    assert not os.path.exists(f'{path}-wal') or os.path.getsize(f'{path}-wal') == 0
    page = pages // 2
    with open(path, 'r+b') as f:
        f.seek(page * page_size)       # page boundary: pages are numbered from 1 at offset 0
        f.write(b'\xa5' * 64)
    return page


@pytest.mark.parametrize('kind', OPENERS)
def test_damaged_pages_are_refused_at_open_with_a_recovery_hint(tmp_path, kind):
    path = tmp_path / f'{kind}.sqlite'
    error = _fill(OPENERS[kind], path, 400)
    _damage_middle_page(path)
    with pytest.raises(error) as exc:
        OPENERS[kind](path)
    text = str(exc.value)
    assert text.startswith(f'{path}: ')
    assert 'damaged' in text and '.recover' in text and 'backup' in text
    assert 'fresh database' in text               # says not to start a new one
    assert isinstance(exc.value, fatal.FatalError)
    assert path.stat().st_size > 0                # the file is left alone for the audit


def test_an_intact_file_reopens_and_keeps_its_rows(tmp_path):
    path = tmp_path / 'ok.sqlite'
    _fill(_toy_db, path, 400)
    db = ToyDb(path)
    assert db.count() == 400
    db.close()


@pytest.mark.parametrize('kind', OPENERS)
def test_disk_full_rolls_back_and_raises_the_db_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f'{kind}.sqlite'
    db, add = OPENERS[kind](path)
    with db.transaction():
        add(0)
    pages = db._conn.execute('PRAGMA page_count').fetchone()[0]
    db._conn.execute(f'PRAGMA max_page_count = {pages + 2}')    # the "disk" holds 2 more pages
    with pytest.raises(db.Error) as exc:
        with db.transaction():
            for i in range(1, 200):
                add(i)
    text = str(exc.value)
    assert text.startswith(f'{path}: ') and 'disk full' in text and 'rolled back' in text
    assert isinstance(exc.value, fatal.FatalError)
    assert fatal.pending() is exc.value           # other threads' failures stop the node too
    assert not db._in_tx and not db._conn.in_transaction
    db.close()
    # nothing of the failed transaction was written; the first one is intact
    db, add = OPENERS[kind](path)
    n = db._conn.execute(ADDED_ROWS[kind]).fetchone()[0]
    assert n == 1
    with db.transaction():                       # and it works again once there is space
        add(1)
    db.close()


def test_a_constraint_violation_is_not_translated(tmp_path):
    db = ToyDb(tmp_path / 'x.sqlite')
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction():
            db._w('INSERT INTO rows (row_id, body) VALUES (1, NULL)')
    assert fatal.pending() is None
    db.close()


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / 'run'
    blocker.write_text('a file where the run directory should be\n')
    path = blocker / 'db' / 'carts.sqlite'
    with pytest.raises(ToyError) as exc:
        ToyDb(path)
    text = str(exc.value)
    assert text.startswith(f'{path}: cannot create the folder {blocker / "db"}')
    assert 'writable' in text


def _mount_tmpfs(where: pathlib.Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(where)],
                          capture_output=True)
    return done.returncode == 0


def _readonly_folder(tmp_path: pathlib.Path) -> pathlib.Path | None:
    """A folder this process cannot write: chmod for a normal user, a ro tmpfs for root."""
    folder = tmp_path / 'ro'
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    folder.chmod(0o755)
    return folder if _mount_tmpfs(folder, 'ro,size=1m') else None


def _umount(folder: pathlib.Path) -> None:
    if os.path.ismount(folder):
        subprocess.run(['umount', '-l', str(folder)], check=False)   # -l: even if a file is open


def test_a_read_only_folder_is_a_clear_error(tmp_path):
    folder = _readonly_folder(tmp_path)
    if folder is None:
        pytest.skip('cannot make a read-only folder here (root without mount)')
    try:
        path = folder / 'carts.sqlite'
        with pytest.raises(ToyError) as exc:
            ToyDb(path)
        text = str(exc.value)
        assert text.startswith(f'{path}: ')
        assert 'writable' in text and str(folder) in text
    finally:
        _umount(folder)
        folder.chmod(0o755)


def test_a_really_full_file_system_is_a_clear_error(tmp_path):
    where = tmp_path / 'small'
    if not _mount_tmpfs(where, 'size=256k'):
        pytest.skip('mounting a small tmpfs needs root')
    try:
        path = where / 'toy.sqlite'
        db = ToyDb(path)
        with pytest.raises(ToyError, match='disk full') as exc:
            for i in range(2000):
                with db.transaction():
                    db.add(f'{i}' + 'y' * 2000)
        assert str(exc.value).startswith(f'{path}: toy database: disk full')
        db.close()
    finally:
        _umount(where)
