"""SQLite persistence of sessions, queued and processed events, cart lines, reviews and receipts.

Money is at stake, so the database runs in WAL mode with ``synchronous=FULL`` (a committed
transaction survives a power cut) and foreign keys on. The engine wraps every state change caused
by one input in one :meth:`CartDb.transaction`, so a process killed at any instant leaves all or
nothing of that input.

Cart lines are stored as signed per-event contributions (``quantity`` +2 for a take of two,
-1 for a return); a cart is their sum per (sku, status). A review decision replaces the lines of
its shelf event, which keeps the audit trail readable: every line names its source event.

No rclpy here.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from store_common.sqlite_db import TransactionalDb

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,              -- "<shopper_id>@<enter ns>"
    shopper_id TEXT NOT NULL,
    enter_ns INTEGER NOT NULL,                -- sensor time of the entrance scan
    exit_ns INTEGER,                          -- sensor time of the exit scan; NULL while inside
    last_change_ns INTEGER NOT NULL,          -- sensor time of the last change of the cart
    CHECK (exit_ns IS NULL OR exit_ns >= enter_ns)
);
CREATE INDEX sessions_by_shopper ON sessions (shopper_id, enter_ns);
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,                -- shelf or gate event id
    kind TEXT NOT NULL CHECK (kind IN ('shelf', 'gate')),
    stamp_ns INTEGER NOT NULL,                -- settled stamp (shelf) or scan stamp (gate)
    payload TEXT NOT NULL,                    -- the event as JSON
    status TEXT NOT NULL CHECK (status IN ('queued', 'processed')),
    note TEXT NOT NULL DEFAULT ''             -- what processing did with it
);
CREATE INDEX events_queue ON events (status, stamp_ns, event_id);
CREATE TABLE cart_lines (
    line_id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,                -- signed change of units
    status TEXT NOT NULL CHECK (status IN ('confirmed', 'pending')),
    source_event TEXT NOT NULL                -- shelf event id (or review request id)
);
CREATE INDEX cart_lines_by_session ON cart_lines (session_id);
CREATE INDEX cart_lines_by_source ON cart_lines (source_event);
CREATE TABLE review_requests (
    request_id TEXT PRIMARY KEY,              -- "review/<event_id>"
    event_id TEXT NOT NULL REFERENCES events (event_id),
    status TEXT NOT NULL CHECK (status IN ('open', 'decided')),
    stamp_ns INTEGER NOT NULL,
    request TEXT NOT NULL,                    -- the whole request as JSON
    candidates TEXT NOT NULL,                 -- its candidates as JSON
    decision TEXT                             -- the decision as JSON once decided
);
CREATE TABLE review_sessions (                -- sessions whose cart waits for a review
                                              -- (none for a spot check)
    request_id TEXT NOT NULL REFERENCES review_requests (request_id),
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    PRIMARY KEY (request_id, session_id)
);
CREATE TABLE receipts (
    receipt_id TEXT NOT NULL REFERENCES sessions (session_id),
    revision INTEGER NOT NULL CHECK (revision >= 1),
    issued_ns INTEGER NOT NULL,
    payload TEXT NOT NULL,                    -- the receipt as JSON
    PRIMARY KEY (receipt_id, revision)
);
"""

_TABLES = ('schema_version', 'sessions', 'events', 'cart_lines', 'review_requests',
           'review_sessions', 'receipts')


class CartDbError(RuntimeError):
    """The database file cannot be used. ``str()`` starts with the file name."""


def dumps(obj: Any) -> str:
    """Deterministic JSON (the same input always gives the same bytes in the db)."""
    return json.dumps(obj, sort_keys=True, separators=(',', ':'))


class CartDb(TransactionalDb):
    """One connection to the cart database (the node is single-threaded)."""

    KIND = 'cart'
    SCHEMA = _SCHEMA
    SCHEMA_VERSION = SCHEMA_VERSION
    TABLES = tuple(_TABLES)
    Error = CartDbError

    # --- transactions -------------------------------------------------------------------------
    def _x(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, args)

    # --- events -------------------------------------------------------------------------------
    def event(self, event_id: str) -> dict | None:
        r = self._x('SELECT kind, stamp_ns, payload, status, note FROM events WHERE event_id = ?',
                    (event_id,)).fetchone()
        if r is None:
            return None
        return {'kind': r[0], 'stamp_ns': r[1], 'payload': json.loads(r[2]), 'status': r[3],
                'note': r[4]}

    def add_event(self, event_id: str, kind: str, stamp_ns: int, payload: dict, status: str,
                  note: str = '') -> None:
        self._w('INSERT INTO events (event_id, kind, stamp_ns, payload, status, note) '
                'VALUES (?, ?, ?, ?, ?, ?)', (event_id, kind, stamp_ns, dumps(payload), status,
                                              note))

    def processed_shelf_events(self) -> list[tuple[str, dict]]:
        """(event id, payload) of every decided shelf event, in (stamp, id) order."""
        return [(r[0], json.loads(r[1])) for r in self._x(
            "SELECT event_id, payload FROM events WHERE kind = 'shelf' AND status = 'processed' "
            'ORDER BY stamp_ns, event_id')]

    def mark_processed(self, event_id: str, note: str) -> None:
        self._w("UPDATE events SET status = 'processed', note = ? WHERE event_id = ?",
                (note, event_id))

    def due_events(self, max_shelf_ns: int, max_gate_ns: int) -> list[tuple[str, str, dict]]:
        """(event_id, kind, payload) of the queued shelf events with stamp <= max_shelf_ns and
        gate events with stamp <= max_gate_ns, in (stamp, gate first, id) order."""
        rows = self._x("SELECT event_id, kind, payload FROM events WHERE status = 'queued' "
                       "AND ((kind = 'shelf' AND stamp_ns <= ?) OR (kind = 'gate' AND "
                       "stamp_ns <= ?)) ORDER BY stamp_ns, kind, event_id",
                       (max_shelf_ns, max_gate_ns))
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def queued_count(self, before_ns: int | None = None) -> int:
        """Events received but not yet decided (waiting for the hold or the watermarks); with
        ``before_ns``, only those stamped at or before it."""
        if before_ns is None:
            return int(self._x("SELECT COUNT(*) FROM events WHERE status = 'queued'")
                       .fetchone()[0])
        return int(self._x("SELECT COUNT(*) FROM events WHERE status = 'queued' AND "
                           'stamp_ns <= ?', (before_ns,)).fetchone()[0])

    # --- sessions -----------------------------------------------------------------------------
    _SESSION_COLS = 'session_id, shopper_id, enter_ns, exit_ns, last_change_ns'

    @staticmethod
    def _session(r) -> dict | None:
        if r is None:
            return None
        return dict(zip(('session_id', 'shopper_id', 'enter_ns', 'exit_ns', 'last_change_ns'),
                        r))

    def session(self, session_id: str) -> dict | None:
        return self._session(self._x(f'SELECT {self._SESSION_COLS} FROM sessions '
                                     'WHERE session_id = ?', (session_id,)).fetchone())

    def open_session(self, shopper_id: str) -> dict | None:
        return self._session(self._x(
            f'SELECT {self._SESSION_COLS} FROM sessions WHERE shopper_id = ? AND exit_ns IS NULL '
            'ORDER BY enter_ns DESC LIMIT 1', (shopper_id,)).fetchone())

    def sessions(self) -> list[dict]:
        return [self._session(r) for r in self._x(
            f'SELECT {self._SESSION_COLS} FROM sessions ORDER BY enter_ns, session_id')]

    def sessions_at(self, stamp_ns: int) -> list[dict]:
        """Sessions whose [enter, exit] contains stamp_ns (exit open while inside)."""
        return [self._session(r) for r in self._x(
            f'SELECT {self._SESSION_COLS} FROM sessions WHERE enter_ns <= ? '
            'AND (exit_ns IS NULL OR exit_ns >= ?) ORDER BY shopper_id, enter_ns',
            (stamp_ns, stamp_ns))]

    def add_session(self, session_id: str, shopper_id: str, enter_ns: int) -> None:
        self._w('INSERT INTO sessions (session_id, shopper_id, enter_ns, exit_ns, last_change_ns)'
                ' VALUES (?, ?, ?, NULL, ?)', (session_id, shopper_id, enter_ns, enter_ns))

    def close_session(self, session_id: str, exit_ns: int) -> None:
        self._w('UPDATE sessions SET exit_ns = ? WHERE session_id = ?', (exit_ns, session_id))

    def touch_session(self, session_id: str, stamp_ns: int) -> None:
        self._w('UPDATE sessions SET last_change_ns = MAX(last_change_ns, ?) '
                'WHERE session_id = ?', (stamp_ns, session_id))

    def sessions_due_for_receipt(self, max_exit_ns: int) -> list[str]:
        return [r[0] for r in self._x(
            'SELECT s.session_id FROM sessions s WHERE s.exit_ns IS NOT NULL AND s.exit_ns <= ? '
            'AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.receipt_id = s.session_id) '
            'ORDER BY s.exit_ns, s.session_id', (max_exit_ns,))]

    # --- cart lines ---------------------------------------------------------------------------
    def add_line(self, session_id: str, sku: str, quantity: int, status: str,
                 source_event: str) -> None:
        self._w('INSERT INTO cart_lines (session_id, sku, quantity, status, source_event) '
                'VALUES (?, ?, ?, ?, ?)', (session_id, sku, quantity, status, source_event))

    def line_sums(self, session_id: str) -> list[tuple[str, str, int]]:
        """(sku, status, summed quantity) of a session, sorted by sku then status."""
        return [tuple(r) for r in self._x(
            'SELECT sku, status, SUM(quantity) FROM cart_lines WHERE session_id = ? '
            'GROUP BY sku, status ORDER BY sku, status', (session_id,))]

    def confirmed_quantity(self, session_id: str, sku: str) -> int:
        return int(self._x("SELECT COALESCE(SUM(quantity), 0) FROM cart_lines WHERE "
                           "session_id = ? AND sku = ? AND status = 'confirmed'",
                           (session_id, sku)).fetchone()[0])

    def line_quantity(self, session_id: str, sku: str) -> int:
        """Units of a SKU in a session's cart lines, confirmed and pending together."""
        return int(self._x('SELECT COALESCE(SUM(quantity), 0) FROM cart_lines WHERE '
                           'session_id = ? AND sku = ?', (session_id, sku)).fetchone()[0])

    def lines_of_source(self, source_event: str) -> list[tuple[str, str, int, str]]:
        """(session_id, sku, quantity, status) rows caused by one event."""
        return [tuple(r) for r in self._x(
            'SELECT session_id, sku, quantity, status FROM cart_lines WHERE source_event = ? '
            'ORDER BY line_id', (source_event,))]

    def delete_lines_of_source(self, source_event: str) -> None:
        self._w('DELETE FROM cart_lines WHERE source_event = ?', (source_event,))

    # --- reviews ------------------------------------------------------------------------------
    def add_review(self, request_id: str, event_id: str, stamp_ns: int, request: dict,
                   session_ids: list[str]) -> None:
        self._w("INSERT INTO review_requests (request_id, event_id, status, stamp_ns, request, "
                "candidates, decision) VALUES (?, ?, 'open', ?, ?, ?, NULL)",
                (request_id, event_id, stamp_ns, dumps(request), dumps(request['candidates'])))
        for sid in session_ids:
            self._w('INSERT INTO review_sessions (request_id, session_id) VALUES (?, ?)',
                    (request_id, sid))

    def review(self, request_id: str) -> dict | None:
        r = self._x('SELECT event_id, status, request, decision FROM review_requests '
                    'WHERE request_id = ?', (request_id,)).fetchone()
        if r is None:
            return None
        return {'event_id': r[0], 'status': r[1], 'request': json.loads(r[2]),
                'decision': json.loads(r[3]) if r[3] else None,
                'session_ids': [x[0] for x in self._x(
                    'SELECT session_id FROM review_sessions WHERE request_id = ? '
                    'ORDER BY session_id', (request_id,))]}

    def decided_reviews(self) -> list[dict]:
        """Every decided review: {request_id, event_id, request, decision}, in stamp order."""
        return [{'request_id': r[0], 'event_id': r[1], 'request': json.loads(r[2]),
                 'decision': json.loads(r[3])} for r in self._x(
            "SELECT request_id, event_id, request, decision FROM review_requests "
            "WHERE status = 'decided' ORDER BY stamp_ns, request_id")]

    def decide_review(self, request_id: str, decision: dict) -> None:
        self._w("UPDATE review_requests SET status = 'decided', decision = ? "
                'WHERE request_id = ?', (dumps(decision), request_id))

    def open_reviews(self) -> list[dict]:
        return [json.loads(r[0]) for r in self._x(
            "SELECT request FROM review_requests WHERE status = 'open' "
            'ORDER BY stamp_ns, request_id')]

    def open_reviews_of(self, session_id: str) -> list[dict]:
        """The open review requests that name a session (as a candidate's visit)."""
        return [json.loads(r[0]) for r in self._x(
            'SELECT rr.request FROM review_sessions rs JOIN review_requests rr '
            "ON rr.request_id = rs.request_id WHERE rs.session_id = ? AND rr.status = 'open' "
            'ORDER BY rr.stamp_ns, rr.request_id', (session_id,))]

    def open_review_count(self, session_id: str) -> int:
        return int(self._x(
            'SELECT COUNT(*) FROM review_sessions rs JOIN review_requests rr '
            "ON rr.request_id = rs.request_id WHERE rs.session_id = ? AND rr.status = 'open'",
            (session_id,)).fetchone()[0])

    # --- receipts -----------------------------------------------------------------------------
    def latest_receipt(self, receipt_id: str) -> dict | None:
        r = self._x('SELECT payload FROM receipts WHERE receipt_id = ? '
                    'ORDER BY revision DESC LIMIT 1', (receipt_id,)).fetchone()
        return json.loads(r[0]) if r else None

    def add_receipt(self, receipt_id: str, revision: int, issued_ns: int, payload: dict) -> None:
        self._w('INSERT INTO receipts (receipt_id, revision, issued_ns, payload) '
                'VALUES (?, ?, ?, ?)', (receipt_id, revision, issued_ns, dumps(payload)))

    def receipts(self, latest_only: bool = True) -> list[dict]:
        if latest_only:
            sql = ('SELECT r.payload FROM receipts r WHERE r.revision = (SELECT MAX(revision) '
                   'FROM receipts x WHERE x.receipt_id = r.receipt_id) '
                   'ORDER BY r.issued_ns, r.receipt_id')
        else:
            sql = 'SELECT payload FROM receipts ORDER BY receipt_id, revision'
        return [json.loads(r[0]) for r in self._x(sql)]

    # --- inspection (tests, tools) ------------------------------------------------------------
    def dump(self) -> dict[str, list[tuple]]:
        """Every row of every table, sorted: equal dumps mean equal databases."""
        return {t: sorted((tuple(r) for r in self._x(f'SELECT * FROM {t}')), key=repr)
                for t in _TABLES}
