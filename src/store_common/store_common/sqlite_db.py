"""SQLite databases of the store's components (carts, review queue): one way to open and write.

Money and audit trails are at stake, so every database runs in WAL mode with
``synchronous=FULL`` (a committed transaction survives a power cut) and foreign keys on; it
carries a ``schema_version`` table checked on open; and writes happen only inside
:meth:`TransactionalDb.transaction`, so a process killed at any instant leaves all or nothing of
one input. A file that is not such a database raises the subclass's error, naming the file.

A file with damaged pages is refused at open (``PRAGMA quick_check``), never silently replaced:
the error says how to recover. While the database is in use, sqlite errors that no retry can
fix (disk full, read-only, file gone, I/O error, corruption) become the subclass's error, naming
the file and the cause, and are also :class:`store_common.fatal.FatalError`: the transaction has
rolled back (nothing half-written) and ``run_node`` stops the node with a non-zero exit code.
Constraint violations (``sqlite3.IntegrityError``) are bugs of the caller and pass unchanged.

No rclpy here.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import threading
from typing import Any, Iterator

from store_common import fatal


# Primary result codes (the low byte of an extended code) that no retry of the same write fixes.
_FULL, _READONLY, _CANTOPEN, _IOERR, _CORRUPT, _NOTADB = 13, 8, 14, 10, 11, 26
_FATAL_CODES = (_FULL, _READONLY, _CANTOPEN, _IOERR, _CORRUPT, _NOTADB)


def recovery_hint(path: str) -> str:
    """What to do with a damaged database file (never start a fresh one in its place)."""
    return (f'stop the node, keep {path} (with any -wal and -shm file beside it) for audit, '
            f'then restore the last backup, or salvage what is readable with '
            f'`sqlite3 {path} ".recover" | sqlite3 recovered.sqlite`, check it and move it in '
            f'place; do not start with a fresh database: the carts, receipts and audit trail '
            f'in this file would be lost')


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, 'sqlite_errorcode', None)
    return None if code is None else int(code) & 0xFF


class _Cursor:
    """A cursor whose fetches translate fatal sqlite errors like the connection does."""

    __slots__ = ('_cur', '_db')

    def __init__(self, cur: sqlite3.Cursor, db: 'TransactionalDb'):
        self._cur = cur
        self._db = db

    def _fetch(self, method: str, *args) -> Any:
        try:
            return getattr(self._cur, method)(*args)
        except sqlite3.Error as exc:
            err = self._db._translate(exc, 'reading')
            if err is exc:
                raise
            raise err from exc

    def fetchone(self) -> Any:
        return self._fetch('fetchone')

    def fetchall(self) -> list:
        return self._fetch('fetchall')

    def fetchmany(self, size: int = 1) -> list:
        return self._fetch('fetchmany', size)

    def __iter__(self) -> Iterator:
        while True:
            row = self._fetch('fetchone')
            if row is None:
                return
            yield row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class _Connection:
    """The sqlite3 connection of a :class:`TransactionalDb`: statements that fail for a reason
    no retry fixes raise the db's error class (a FatalError) naming the file and the cause."""

    __slots__ = ('_conn', '_db')

    def __init__(self, conn: sqlite3.Connection, db: 'TransactionalDb'):
        self._conn = conn
        self._db = db

    def _run(self, method: str, sql: str, *args) -> Any:
        try:
            cur = getattr(self._conn, method)(sql, *args)
        except sqlite3.Error as exc:
            words = sql.split(None, 2)
            verb = ' '.join(words[:2] if words and words[0].upper() == 'PRAGMA' else words[:1])
            err = self._db._translate(exc, f'running {verb.upper() or "a statement"}')
            if err is exc:
                raise
            raise err from exc
        return _Cursor(cur, self._db)

    def execute(self, sql: str, args: Any = ()) -> _Cursor:
        return self._run('execute', sql, args)

    def executemany(self, sql: str, rows: Any) -> _Cursor:
        return self._run('executemany', sql, rows)

    def executescript(self, script: str) -> _Cursor:
        return self._run('executescript', script)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class TransactionalDb:
    """One connection to a component's database. Subclasses set the class attributes."""

    KIND = 'store'                       # word used in messages: "<KIND> database"
    SCHEMA = ''                          # CREATE TABLE statements, schema_version included
    SCHEMA_VERSION = 1
    TABLES: tuple[str, ...] = ()         # tables that must exist in an existing file
    Error: type[Exception] = ValueError  # raised for a file that cannot be used
    # Checked on every open of an existing file: 'quick_check' (every page and record is read
    # and its structure checked) or 'integrity_check' (also every index against its table);
    # '' skips it. bench_db_open on a 134 MB cart db (200k events, page cache warm):
    # no check 1.5 ms, quick_check 148 ms (1.1 ms/MB), integrity_check 353 ms (2.6 ms/MB).
    INTEGRITY_CHECK = 'quick_check'

    def __init__(self, path: str | os.PathLike, *, thread_safe: bool = False):
        """Open (or create) the database at ``path``; ``thread_safe`` serialises access."""
        self.path = str(path)
        self._opened = False
        if self.path != ':memory:':
            folder = pathlib.Path(self.path).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self.Error(f'{self.path}: cannot create the folder {folder} of the '
                                 f'{self.KIND} database: {exc.strerror or exc}; create it, '
                                 f'writable by this user, or set another path') from None
        try:
            raw = sqlite3.connect(self.path, isolation_level=None,
                                  check_same_thread=not thread_safe)
        except sqlite3.Error as exc:
            raise self._open_error(exc) from None
        self._conn = _Connection(raw, self)
        self._lock = threading.RLock()
        self._in_tx = False
        try:
            self._setup()
        except self.Error:
            raw.close()
            raise
        except sqlite3.DatabaseError as exc:
            raw.close()
            raise self._open_error(exc) from None
        self._opened = True

    def _open_error(self, exc: sqlite3.Error) -> Exception:
        """The error for a file that cannot be opened as a database (naming the file)."""
        code = _code(exc)
        if code in _FATAL_CODES:
            return self._translate(exc, 'opening it')
        return self.Error(f'{self.path}: not a valid {self.KIND} database: {exc}')

    def _translate(self, exc: sqlite3.Error, doing: str) -> BaseException:
        """``exc`` as this db's error (also a FatalError) if no retry can fix it, else ``exc``."""
        code = _code(exc)
        if code not in _FATAL_CODES:
            return exc
        where = f'{self.path}: {self.KIND} database'
        folder = pathlib.Path(self.path).parent
        if code == _FULL:
            text = (f'{where}: disk full ({exc}) while {doing}; the transaction was rolled '
                    f'back, nothing of it was written. Free space on the file system of '
                    f'{folder} and restart the node: unacknowledged inputs are redelivered')
        elif code == _READONLY:
            text = (f'{where} is read-only ({exc}) while {doing}; make the file, its -wal and '
                    f'-shm files and the folder {folder} writable by this user, then restart')
        elif code == _CANTOPEN:
            text = (f'{where}: cannot open the file ({exc}) while {doing}; check that the '
                    f'folder {folder} exists and is writable by this user and that the file '
                    f'was not removed, then restart')
        elif code == _IOERR:
            text = (f'{where}: I/O error ({exc}) while {doing}; check the disk (dmesg, free '
                    f'space) and restart')
        elif self._opened or code == _CORRUPT:
            text = f'{where} is damaged ({exc}) while {doing}: {recovery_hint(self.path)}'
        else:
            text = (f'{self.path}: not a valid {self.KIND} database ({exc}); if this is the '
                    f'{self.KIND} database, it is damaged: {recovery_hint(self.path)}')
        err = fatal.fatal_class(self.Error)(text)
        err.sqlite_errorname = getattr(exc, 'sqlite_errorname', '')
        if self._opened:
            fatal.report(err)
        return err

    def _setup(self) -> None:
        c = self._conn
        c.execute('PRAGMA foreign_keys = ON')
        mode = c.execute('PRAGMA journal_mode = WAL').fetchone()[0]
        if self.path != ':memory:' and str(mode).lower() != 'wal':
            raise self.Error(f'{self.path}: cannot switch to WAL journal mode (got {mode})')
        c.execute('PRAGMA synchronous = FULL')
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if not r[0].startswith('sqlite_')}
        if not tables:
            try:
                c.executescript(f'BEGIN IMMEDIATE; {self.SCHEMA}; INSERT INTO schema_version '
                                f'(version) VALUES ({self.SCHEMA_VERSION}); COMMIT;')
            except BaseException:
                if c.in_transaction:
                    c.execute('ROLLBACK')
                raise
            return
        if 'schema_version' not in tables:
            raise self.Error(f'{self.path}: not a {self.KIND} database (no schema_version table; '
                             f'tables: {", ".join(sorted(tables))})')
        rows = c.execute('SELECT version FROM schema_version').fetchall()
        if len(rows) != 1 or rows[0][0] != self.SCHEMA_VERSION:
            found = rows[0][0] if len(rows) == 1 else f'{len(rows)} rows'
            raise self.Error(f'{self.path}: {self.KIND} database schema version {found}, this '
                             f'code needs {self.SCHEMA_VERSION}; migrate the file or move it away')
        missing = [t for t in self.TABLES if t not in tables]
        if missing:
            raise self.Error(f'{self.path}: {self.KIND} database lacks tables '
                             f'{", ".join(missing)}')
        self._check_integrity()

    def _check_integrity(self) -> None:
        """Refuse a file with damaged pages (``INTEGRITY_CHECK``), saying how to recover."""
        if not self.INTEGRITY_CHECK or self.path == ':memory:':
            return
        if self.INTEGRITY_CHECK not in ('quick_check', 'integrity_check'):
            raise ValueError(f'INTEGRITY_CHECK {self.INTEGRITY_CHECK!r} is not quick_check, '
                             f'integrity_check or empty')
        rows = [r[0] for r in self._conn.execute(f'PRAGMA {self.INTEGRITY_CHECK}(20)')]
        if rows != ['ok']:
            shown = '; '.join(str(r) for r in rows[:3])
            more = f' (and {len(rows) - 3} more)' if len(rows) > 3 else ''
            raise fatal.fatal_class(self.Error)(
                f'{self.path}: the {self.KIND} database is damaged: {self.INTEGRITY_CHECK} '
                f'found {shown}{more}; {recovery_hint(self.path)}')

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (holding the lock).

        A failure anywhere, the COMMIT included, rolls everything back before it propagates;
        one that no retry fixes (disk full, read-only, I/O error, damage) propagates as this
        db's error class, a :class:`store_common.fatal.FatalError`.
        """
        with self._lock:
            if self._in_tx:
                raise RuntimeError(f'nested {self.KIND} db transaction')
            self._conn.execute('BEGIN IMMEDIATE')
            self._in_tx = True
            try:
                yield
                self._conn.execute('COMMIT')
            except BaseException:
                self._rollback()
                raise
            finally:
                self._in_tx = False

    def _rollback(self) -> None:
        # sqlite has already rolled back after SQLITE_FULL and some I/O errors; a failing
        # ROLLBACK is raised (translated) with the original error as its context
        if self._conn.in_transaction:
            self._conn.execute('ROLLBACK')

    def _w(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """A write; refused outside a transaction."""
        if not self._in_tx:
            raise RuntimeError(f'{self.KIND} db write outside a transaction')
        return self._conn.execute(sql, args)
