"""SQLite databases of the store's components (carts, review queue): one way to open and write.

Money and audit trails are at stake, so every database runs in WAL mode with
``synchronous=FULL`` (a committed transaction survives a power cut) and foreign keys on; it
carries a ``schema_version`` table checked on open; and writes happen only inside
:meth:`TransactionalDb.transaction`, so a process killed at any instant leaves all or nothing of
one input. A file that is not such a database raises the subclass's error, naming the file.

No rclpy here.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import threading
from typing import Iterator


class TransactionalDb:
    """One connection to a component's database. Subclasses set the class attributes."""

    KIND = 'store'                       # word used in messages: "<KIND> database"
    SCHEMA = ''                          # CREATE TABLE statements, schema_version included
    SCHEMA_VERSION = 1
    TABLES: tuple[str, ...] = ()         # tables that must exist in an existing file
    Error: type[Exception] = ValueError  # raised for a file that cannot be used

    def __init__(self, path: str | os.PathLike, *, thread_safe: bool = False):
        """Open (or create) the database at ``path``; ``thread_safe`` serialises access."""
        self.path = str(path)
        if self.path != ':memory:':
            pathlib.Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=not thread_safe)
        except sqlite3.Error as exc:
            raise self.Error(f'{self.path}: cannot open the {self.KIND} database: {exc}') from None
        self._lock = threading.RLock()
        self._in_tx = False
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise self.Error(f'{self.path}: not a valid {self.KIND} database: {exc}') from None
        except self.Error:
            self._conn.close()
            raise

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

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (holding the lock)."""
        with self._lock:
            if self._in_tx:
                raise RuntimeError(f'nested {self.KIND} db transaction')
            self._conn.execute('BEGIN IMMEDIATE')
            self._in_tx = True
            try:
                yield
            except BaseException:
                self._conn.execute('ROLLBACK')
                raise
            else:
                self._conn.execute('COMMIT')
            finally:
                self._in_tx = False

    def _w(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """A write; refused outside a transaction."""
        if not self._in_tx:
            raise RuntimeError(f'{self.KIND} db write outside a transaction')
        return self._conn.execute(sql, args)
