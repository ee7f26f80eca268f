"""The review store: requests, evidence, decisions, accounts, sessions and the audit log in SQLite.

Like the cart database, it runs in WAL mode with ``synchronous=FULL`` and wraps every state
change caused by one input (a request, a cart state, a decision, a sweep) in one transaction, so
nothing is lost or half-written on a crash or restart. Requests are idempotent by ``request_id``:
a redelivered request (the cart republishes open requests on start) changes nothing.

Status of a request::

    open --(escalate_after_s)--> escalated --(expire_after_s)--> expired (flagged)
      \\__________________________ decided ___________________________/

Escalated and expired requests are visible to and decidable by supervisors only. Priority is
computed when the queue is read: a base per reason, plus age, plus a large bonus once one of the
request's shoppers has left the store (their receipt is waiting for the answer). A spot check
(the machine decided alone; the cart holds its answer) comes after every review: base 0, no
bonus, never escalated, and it expires unflagged.

Hand-off of a decision to the cart (``handoffs``, one row per decision)::

    sent --(cart's ReviewDecisionAck APPLIED)--> applied
      \\--(cart's ReviewDecisionAck REJECTED)--> rejected (with the cart's reason)

A ``sent`` decision is re-published on start and then periodically until the cart acknowledges
it, so a decision made while the cart is down, or before a restart of the review node, still
reaches the cart. The first acknowledgement is final; later ones that disagree are audited.

Schema version 2 added ``handoffs``; a version-1 file is migrated on open, its decisions
``sent`` (the cart applies a decision it has already applied again as a no-op and acks it).

One connection shared by the ROS thread and the web server's thread, guarded by a lock. No rclpy.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from store_cart.model import (
    REASON_AMBIGUOUS_SHOPPER, REASON_CLOSE_CANDIDATES, REASON_LOW_CONFIDENCE, REASON_NO_SHOPPER,
    REASON_NOT_IN_CART, REASON_SENSOR_FAULT, REASON_SPOT_CHECK, REASON_UNKNOWN_WEIGHT)
from store_common.sqlite_db import TransactionalDb

SCHEMA_VERSION = 2
NS_PER_S = 1_000_000_000

STATUSES = ('open', 'decided', 'escalated', 'expired')
ROLES = ('reviewer', 'supervisor')

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- short id for URLs
    request_id TEXT NOT NULL UNIQUE,         -- "review/<event_id>"
    event_id TEXT NOT NULL,
    reason INTEGER NOT NULL,                 -- ReviewRequest.REASON_*
    stamp_ns INTEGER NOT NULL,               -- sensor time of the shelf event
    received_ns INTEGER NOT NULL,            -- node time the request arrived (age, timeouts)
    status TEXT NOT NULL CHECK (status IN ('open', 'decided', 'escalated', 'expired')),
    flagged INTEGER NOT NULL DEFAULT 0,      -- 1: expired before anyone answered
    request TEXT NOT NULL,                   -- the request as JSON (store_cart.model layout)
    decided_ns INTEGER
);
CREATE INDEX requests_by_status ON requests (status, stamp_ns);
CREATE TABLE evidence (
    evidence_id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests (request_id),
    kind TEXT NOT NULL CHECK (kind IN ('weight_trace', 'image')),
    name TEXT NOT NULL,                      -- plate id (trace) or "<camera>@<stamp>" (image)
    stamp_ns INTEGER NOT NULL,
    payload TEXT NOT NULL,                   -- trace samples / image metadata as JSON
    path TEXT NOT NULL DEFAULT '',           -- image file (JPEG, faces blurred)
    UNIQUE (request_id, kind, name)
);
CREATE TABLE decisions (
    request_id TEXT PRIMARY KEY REFERENCES requests (request_id),
    reviewer TEXT NOT NULL,
    role TEXT NOT NULL,
    decided_ns INTEGER NOT NULL,
    choice INTEGER NOT NULL,                 -- candidate index; -1: no change
    decision TEXT NOT NULL                   -- ReviewDecisionData as JSON
);
CREATE TABLE shoppers (
    shopper_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    exited INTEGER NOT NULL,
    stamp_ns INTEGER NOT NULL
);
CREATE TABLE receipts (
    receipt_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    shopper_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (receipt_id, revision)
);
CREATE TABLE shelf_events (
    event_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL                    -- ShelfEventData as JSON (hypotheses, plates)
);
CREATE TABLE examples (
    request_id TEXT PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    example TEXT NOT NULL                    -- labelled example (learning.py) as JSON
);
CREATE TABLE audit (
    audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
    stamp_ns INTEGER NOT NULL,
    actor TEXT NOT NULL,                     -- user name, or "system"
    action TEXT NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('reviewer', 'supervisor')),
    password TEXT NOT NULL,                  -- "scrypt$n$r$p$salt_hex$hash_hex"; never plain
    created_ns INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,             -- sha256 of the cookie token; the token is not kept
    user TEXT NOT NULL REFERENCES users (name),
    csrf TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL
);
"""
_HANDOFFS = """
CREATE TABLE handoffs (
    request_id TEXT PRIMARY KEY REFERENCES decisions (request_id),
    state TEXT NOT NULL CHECK (state IN ('sent', 'applied', 'rejected')),
    reason TEXT NOT NULL DEFAULT '',         -- the cart's reason for a refusal
    sends INTEGER NOT NULL DEFAULT 0,        -- times published
    sent_ns INTEGER NOT NULL DEFAULT 0,      -- node time of the last publication (0: never)
    acked_ns INTEGER                         -- node time the cart's acknowledgement arrived
);
CREATE INDEX handoffs_by_state ON handoffs (state, sent_ns);
"""
_SCHEMA += _HANDOFFS
_TABLES = ('schema_version', 'requests', 'evidence', 'decisions', 'handoffs', 'shoppers',
           'receipts', 'shelf_events', 'examples', 'audit', 'users', 'sessions')
HANDOFF_STATES = ('sent', 'applied', 'rejected')
MAX_ACK_REASON_LEN = 1000

REASON_BASE = {REASON_AMBIGUOUS_SHOPPER: 30.0, REASON_LOW_CONFIDENCE: 20.0,
               REASON_CLOSE_CANDIDATES: 20.0, REASON_UNKNOWN_WEIGHT: 25.0,
               REASON_NO_SHOPPER: 15.0, REASON_SENSOR_FAULT: 25.0, REASON_NOT_IN_CART: 20.0,
               REASON_SPOT_CHECK: 0.0}


class ReviewDbError(RuntimeError):
    """The database file cannot be used. ``str()`` starts with the file name."""


@dataclass(frozen=True)
class QueueParams:
    escalate_after_s: float = 300.0    # open this long -> escalated (supervisors only)
    expire_after_s: float = 1800.0     # unanswered this long -> expired, flagged
    exited_bonus: float = 100.0        # priority added once a shopper of the request left
    age_per_min: float = 1.0           # priority added per minute of age
    age_cap: float = 60.0              # at most this much priority from age

    def __post_init__(self):
        if not 0 < self.escalate_after_s <= self.expire_after_s:
            raise ValueError('need 0 < escalate_after_s <= expire_after_s, got '
                             f'{self.escalate_after_s} / {self.expire_after_s}')


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(',', ':'))


def priority(reason: int, received_ns: int, now_ns: int, shopper_exited: bool,
             params: QueueParams) -> float:
    """Higher is more urgent: reason base + age (capped) + a bonus once the shopper left.
    A spot check gets no bonus: the cart holds the machine's decision, no receipt waits."""
    age_min = max(0.0, (now_ns - received_ns) / NS_PER_S / 60.0)
    return (REASON_BASE.get(int(reason), 10.0) + min(params.age_cap, age_min * params.age_per_min)
            + (params.exited_bonus if shopper_exited and reason != REASON_SPOT_CHECK else 0.0))


class ReviewStore(TransactionalDb):
    """One connection to the review database, safe to share between threads (the console's
    server thread and the node's callbacks)."""

    KIND = 'review'
    SCHEMA = _SCHEMA
    SCHEMA_VERSION = SCHEMA_VERSION
    TABLES = tuple(_TABLES)
    Error = ReviewDbError

    def __init__(self, path: str | os.PathLike, params: QueueParams | None = None):
        self.params = params or QueueParams()
        super().__init__(path, thread_safe=True)

    def _setup(self) -> None:
        self._migrate()
        super()._setup()

    def _migrate(self) -> None:
        """Bring a version-1 file to version 2 (the ``handoffs`` table), in one transaction."""
        c = self._conn
        if not c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                         "name = 'schema_version'").fetchone():
            return
        c.execute('BEGIN IMMEDIATE')
        try:
            rows = c.execute('SELECT version FROM schema_version').fetchall()
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master "
                                              "WHERE type = 'table'")}
            if [tuple(r) for r in rows] == [(1,)] and 'decisions' in tables:
                for stmt in _HANDOFFS.split(';\n'):      # no ';' ends a line but a statement
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("INSERT INTO handoffs (request_id, state) "
                          "SELECT request_id, 'sent' FROM decisions")
                c.execute('UPDATE schema_version SET version = 2')
            c.execute('COMMIT')
        except BaseException:
            c.execute('ROLLBACK')
            raise

    # --- transactions -------------------------------------------------------------------------
    def _x(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def audit(self, stamp_ns: int, actor: str, action: str, request_id: str = '',
              detail: str = '') -> None:
        self._w('INSERT INTO audit (stamp_ns, actor, action, request_id, detail) '
                'VALUES (?, ?, ?, ?, ?)', (int(stamp_ns), actor, action, request_id, detail))

    def audit_log(self, request_id: str | None = None) -> list[dict]:
        sql = 'SELECT stamp_ns, actor, action, request_id, detail FROM audit'
        args: tuple = ()
        if request_id is not None:
            sql += ' WHERE request_id = ?'
            args = (request_id,)
        return [dict(zip(('stamp_ns', 'actor', 'action', 'request_id', 'detail'), r))
                for r in self._x(sql + ' ORDER BY audit_id', args)]

    # --- requests -----------------------------------------------------------------------------
    def add_request(self, request: dict, received_ns: int) -> bool:
        """Store a request (``ReviewRequestData.to_dict()``); False when it was known."""
        rid = request['request_id']
        with self.transaction():
            if self._conn.execute('SELECT 1 FROM requests WHERE request_id = ?',
                                  (rid,)).fetchone():
                return False
            self._w('INSERT INTO requests (request_id, event_id, reason, stamp_ns, received_ns, '
                    "status, request) VALUES (?, ?, ?, ?, ?, 'open', ?)",
                    (rid, request['event_id'], int(request['reason']), int(request['stamp_ns']),
                     int(received_ns), _dumps(request)))
            self.audit(received_ns, 'system', 'received', rid, request.get('detail', ''))
        return True

    _REQ_COLS = ('seq, request_id, event_id, reason, stamp_ns, received_ns, status, flagged, '
                 'request, decided_ns')

    def _req(self, r: tuple) -> dict:
        d = dict(zip(('seq', 'request_id', 'event_id', 'reason', 'stamp_ns', 'received_ns',
                      'status', 'flagged', 'request', 'decided_ns'), r))
        d['request'] = json.loads(d['request'])
        d['flagged'] = bool(d['flagged'])
        return d

    def request(self, key: str | int) -> dict | None:
        """A request by seq (int) or request id (str), with its decision if any."""
        col = 'seq' if isinstance(key, int) else 'request_id'
        rows = self._x(f'SELECT {self._REQ_COLS} FROM requests WHERE {col} = ?', (key,))
        if not rows:
            return None
        d = self._req(rows[0])
        d['decision'] = self.decision(d['request_id'])
        d['handoff'] = self.handoff(d['request_id'])
        return d

    def requests(self, statuses: tuple[str, ...] = STATUSES) -> list[dict]:
        marks = ','.join('?' * len(statuses))
        return [self._req(r) for r in self._x(
            f'SELECT {self._REQ_COLS} FROM requests WHERE status IN ({marks}) ORDER BY seq',
            tuple(statuses))]

    def shopper_exited(self, shopper_ids) -> bool:
        ids = list(shopper_ids)
        if not ids:
            return False
        marks = ','.join('?' * len(ids))
        return bool(self._x(f'SELECT 1 FROM shoppers WHERE exited = 1 AND shopper_id IN '
                            f'({marks})', tuple(ids)))

    def queue(self, now_ns: int, statuses: tuple[str, ...] = ('open',)) -> list[dict]:
        """Undecided requests of ``statuses``, most urgent first, with ``priority``."""
        out = []
        for d in self.requests(statuses):
            exited = self.shopper_exited(d['request'].get('shopper_ids', ()))
            d['shopper_exited'] = exited
            d['priority'] = priority(d['reason'], d['received_ns'], now_ns, exited, self.params)
            out.append(d)
        out.sort(key=lambda d: (-d['priority'], d['stamp_ns'], d['seq']))
        return out

    def sweep(self, now_ns: int) -> list[tuple[str, str]]:
        """Escalate and expire by age; returns [(request_id, new status)]."""
        esc_ns = int(self.params.escalate_after_s * NS_PER_S)
        exp_ns = int(self.params.expire_after_s * NS_PER_S)
        changed = []
        with self.transaction():
            for rid, status, received, reason in self._conn.execute(
                    "SELECT request_id, status, received_ns, reason FROM requests "
                    "WHERE status IN ('open', 'escalated') ORDER BY seq").fetchall():
                age = now_ns - received
                # a spot check is never escalated nor flagged: nothing waits for it
                check = reason == REASON_SPOT_CHECK
                new = None
                if age >= exp_ns:
                    new = 'expired'
                elif age >= esc_ns and status == 'open' and not check:
                    new = 'escalated'
                if new is None:
                    continue
                self._w('UPDATE requests SET status = ?, flagged = ? WHERE request_id = ?',
                        (new, 1 if new == 'expired' and not check else 0, rid))
                self.audit(now_ns, 'system', new, rid, f'unanswered for {age / NS_PER_S:.0f} s')
                changed.append((rid, new))
        return changed

    # --- decisions ----------------------------------------------------------------------------
    def decide(self, request_id: str, reviewer: str, role: str, choice: int, decision: dict,
               decided_ns: int, example: dict | None = None) -> bool:
        """Record a decision (and its labelled example); False when already decided."""
        with self.transaction():
            row = self._conn.execute('SELECT status FROM requests WHERE request_id = ?',
                                     (request_id,)).fetchone()
            if row is None:
                raise KeyError(request_id)
            if row[0] == 'decided':
                return False
            self._w("UPDATE requests SET status = 'decided', decided_ns = ? WHERE request_id = ?",
                    (int(decided_ns), request_id))
            self._w('INSERT INTO decisions (request_id, reviewer, role, decided_ns, choice, '
                    'decision) VALUES (?, ?, ?, ?, ?, ?)',
                    (request_id, reviewer, role, int(decided_ns), int(choice), _dumps(decision)))
            self._w("INSERT INTO handoffs (request_id, state) VALUES (?, 'sent')",
                    (request_id,))
            if example is not None:
                self._w('INSERT OR REPLACE INTO examples (request_id, created_ns, example) '
                        'VALUES (?, ?, ?)', (request_id, int(decided_ns), _dumps(example)))
            self.audit(decided_ns, reviewer, 'decided', request_id,
                       f'choice {choice}: {_dumps(decision)}')
        return True

    def decision(self, request_id: str) -> dict | None:
        rows = self._x('SELECT reviewer, role, decided_ns, choice, decision FROM decisions '
                       'WHERE request_id = ?', (request_id,))
        if not rows:
            return None
        r = rows[0]
        return {'reviewer': r[0], 'role': r[1], 'decided_ns': r[2], 'choice': r[3],
                'decision': json.loads(r[4])}

    # --- hand-off of decisions to the cart ----------------------------------------------------
    _HANDOFF_COLS = ('request_id', 'state', 'reason', 'sends', 'sent_ns', 'acked_ns')

    def handoff(self, request_id: str) -> dict | None:
        rows = self._x(f'SELECT {", ".join(self._HANDOFF_COLS)} FROM handoffs '
                       'WHERE request_id = ?', (request_id,))
        return dict(zip(self._HANDOFF_COLS, rows[0])) if rows else None

    def handoffs(self, states: tuple[str, ...] = HANDOFF_STATES) -> list[dict]:
        """Hand-offs in ``states`` with their request's seq and decision: refused first, then
        the longest waiting."""
        marks = ','.join('?' * len(states))
        rows = self._x(
            f'SELECT h.{", h.".join(self._HANDOFF_COLS)}, r.seq, d.reviewer, d.decided_ns, '
            f'd.decision FROM handoffs h JOIN requests r USING (request_id) JOIN decisions d '
            f'USING (request_id) WHERE h.state IN ({marks}) ORDER BY '
            "CASE h.state WHEN 'rejected' THEN 0 WHEN 'sent' THEN 1 ELSE 2 END, d.decided_ns, "
            'r.seq', tuple(states))
        out = []
        for r in rows:
            d = dict(zip(self._HANDOFF_COLS + ('seq', 'reviewer', 'decided_ns', 'decision'), r))
            d['decision'] = json.loads(d['decision'])
            out.append(d)
        return out

    def unacked(self, limit: int = 1000) -> list[dict]:
        """Decisions the cart has not acknowledged: least recently sent first."""
        rows = self._x("SELECT h.request_id, h.sends, h.sent_ns, d.decision FROM handoffs h "
                       "JOIN decisions d USING (request_id) WHERE h.state = 'sent' "
                       'ORDER BY h.sent_ns, h.request_id LIMIT ?', (int(limit),))
        return [{'request_id': r[0], 'sends': r[1], 'sent_ns': r[2],
                 'decision': json.loads(r[3])} for r in rows]

    def mark_sent(self, request_ids, now_ns: int) -> None:
        with self.transaction():
            for rid in request_ids:
                self._w("UPDATE handoffs SET sends = sends + 1, sent_ns = ? "
                        "WHERE request_id = ? AND state = 'sent'", (int(now_ns), rid))

    def on_ack(self, request_id: str, reviewer_id: str, applied: bool, reason: str,
               now_ns: int) -> str:
        """Record the cart's acknowledgement of a decision; returns what it was:

        ``applied`` / ``rejected``: the hand-off is now final; ``duplicate``: it already was,
        the same way; ``conflict``: it already was, the other way (audited, first one kept);
        ``other_reviewer``: the ack names another reviewer than the decision made here
        (audited: someone else's decision reached the cart); ``undecided``: the request is
        known but was not decided here (audited: a decision not made by this console);
        ``unknown``: no such request (nothing stored).
        """
        reason = reason[:MAX_ACK_REASON_LEN]
        state = 'applied' if applied else 'rejected'
        said = f'cart {state}' + (f': {reason}' if reason else '') + f' (reviewer {reviewer_id})'
        with self.transaction():
            if not self._conn.execute('SELECT 1 FROM requests WHERE request_id = ?',
                                      (request_id,)).fetchone():
                return 'unknown'
            row = self._conn.execute(
                'SELECT h.state, d.reviewer FROM decisions d LEFT JOIN handoffs h '
                'USING (request_id) WHERE d.request_id = ?', (request_id,)).fetchone()
            if row is None:
                self.audit(now_ns, 'cart', 'ack_without_decision', request_id, said)
                return 'undecided'
            current, reviewer = row
            if reviewer != reviewer_id:
                self.audit(now_ns, 'cart', 'ack_other_reviewer', request_id,
                           f'{said}; decided here by {reviewer}')
                return 'other_reviewer'
            if current == state:
                return 'duplicate'
            if current in ('applied', 'rejected'):
                self.audit(now_ns, 'cart', 'ack_conflict', request_id,
                           f'{said}; kept {current}')
                return 'conflict'
            self._w('INSERT INTO handoffs (request_id, state, reason, acked_ns) '
                    'VALUES (?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET '
                    'state = excluded.state, reason = excluded.reason, '
                    'acked_ns = excluded.acked_ns', (request_id, state, reason, int(now_ns)))
            self.audit(now_ns, 'cart', state, request_id, reason)
        return state

    def cannot_tell_events(self) -> set[str]:
        """Event ids of the requests a person decided with "leave every cart unchanged
        (cannot tell)" (choice -1): no label for learning. The decision that reaches the cart
        is the same as "nothing was taken or returned", which is a label; only the choice
        tells them apart."""
        return {r[0] for r in self._x(
            'SELECT r.event_id FROM decisions d JOIN requests r ON r.request_id = d.request_id '
            'WHERE d.choice = -1')}

    def examples(self) -> list[dict]:
        return [json.loads(r[0]) for r in self._x('SELECT example FROM examples '
                                                  'ORDER BY created_ns, request_id')]

    # --- evidence -----------------------------------------------------------------------------
    def add_evidence(self, request_id: str, kind: str, name: str, stamp_ns: int, payload: dict,
                     path: str = '') -> bool:
        with self.transaction():
            cur = self._w('INSERT OR IGNORE INTO evidence (request_id, kind, name, stamp_ns, '
                          'payload, path) VALUES (?, ?, ?, ?, ?, ?)',
                          (request_id, kind, name, int(stamp_ns), _dumps(payload), path))
        return cur.rowcount == 1

    def evidence(self, request_id: str, kind: str | None = None) -> list[dict]:
        sql = ('SELECT evidence_id, kind, name, stamp_ns, payload, path FROM evidence '
               'WHERE request_id = ?')
        args: tuple = (request_id,)
        if kind:
            sql += ' AND kind = ?'
            args += (kind,)
        return [{'evidence_id': r[0], 'kind': r[1], 'name': r[2], 'stamp_ns': r[3],
                 'payload': json.loads(r[4]), 'path': r[5]}
                for r in self._x(sql + ' ORDER BY kind, name', args)]

    def evidence_item(self, evidence_id: int) -> dict | None:
        rows = self._x('SELECT request_id, kind, name, payload, path FROM evidence '
                       'WHERE evidence_id = ?', (int(evidence_id),))
        if not rows:
            return None
        r = rows[0]
        return {'request_id': r[0], 'kind': r[1], 'name': r[2], 'payload': json.loads(r[3]),
                'path': r[4]}

    def has_trace(self, request_id: str) -> bool:
        return bool(self._x("SELECT 1 FROM evidence WHERE request_id = ? AND "
                            "kind = 'weight_trace'", (request_id,)))

    # --- carts, receipts, shelf events --------------------------------------------------------
    def on_cart(self, shopper_id: str, session_id: str, exited: bool, stamp_ns: int) -> None:
        with self.transaction():
            self._w('INSERT INTO shoppers (shopper_id, session_id, exited, stamp_ns) VALUES '
                    '(?, ?, ?, ?) ON CONFLICT (shopper_id) DO UPDATE SET session_id = '
                    'excluded.session_id, exited = excluded.exited, stamp_ns = excluded.stamp_ns '
                    'WHERE excluded.stamp_ns >= shoppers.stamp_ns',
                    (shopper_id, session_id, int(bool(exited)), int(stamp_ns)))

    def entered_ns(self, shopper_ids) -> dict[str, int]:
        """When each of ``shopper_ids`` entered on their latest visit (from the session id
        ``"<shopper_id>@<enter ns>"``); shoppers not seen are left out."""
        out = {}
        for sid in shopper_ids:
            rows = self._x('SELECT session_id FROM shoppers WHERE shopper_id = ?', (str(sid),))
            if rows:
                head, sep, tail = str(rows[0][0]).rpartition('@')
                if sep and head == sid and tail.isdigit():
                    out[str(sid)] = int(tail)
        return out

    def add_receipt(self, receipt: dict) -> bool:
        with self.transaction():
            cur = self._w('INSERT OR IGNORE INTO receipts (receipt_id, revision, shopper_id, '
                          'payload) VALUES (?, ?, ?, ?)',
                          (receipt['receipt_id'], int(receipt['revision']),
                           receipt['shopper_id'], _dumps(receipt)))
            if cur.rowcount:
                self._w('INSERT INTO shoppers (shopper_id, session_id, exited, stamp_ns) VALUES '
                        '(?, ?, 1, ?) ON CONFLICT (shopper_id) DO UPDATE SET exited = 1 '
                        'WHERE shoppers.session_id = excluded.session_id',
                        (receipt['shopper_id'], receipt['receipt_id'],
                         int(receipt.get('exited_ns', 0))))
        return bool(cur.rowcount)

    def receipts(self, shopper_ids=None) -> list[dict]:
        rows = self._x('SELECT payload FROM receipts ORDER BY receipt_id, revision')
        out = [json.loads(r[0]) for r in rows]
        if shopper_ids is not None:
            ids = set(shopper_ids)
            out = [r for r in out if r['shopper_id'] in ids]
        return out

    def add_shelf_event(self, event: dict) -> None:
        with self.transaction():
            self._w('INSERT OR IGNORE INTO shelf_events (event_id, payload) VALUES (?, ?)',
                    (event['event_id'], _dumps(event)))

    def shelf_event(self, event_id: str) -> dict | None:
        rows = self._x('SELECT payload FROM shelf_events WHERE event_id = ?', (event_id,))
        return json.loads(rows[0][0]) if rows else None

    def shelf_events(self) -> list[dict]:
        return [json.loads(r[0]) for r in self._x('SELECT payload FROM shelf_events '
                                                  'ORDER BY event_id')]

    # --- users and sessions (auth.py holds the crypto) ----------------------------------------
    def add_user(self, name: str, role: str, password_record: str, now_ns: int) -> None:
        """Add a user, or reset an existing one's role and password: a reset ends every
        session of the account (whoever knew the old password is logged out)."""
        if role not in ROLES:
            raise ValueError(f'role {role!r} is not one of {", ".join(ROLES)}')
        with self.transaction():
            self._w('INSERT INTO users (name, role, password, created_ns) VALUES (?, ?, ?, ?) '
                    'ON CONFLICT (name) DO UPDATE SET role = excluded.role, password = '
                    'excluded.password, disabled = 0', (name, role, password_record, now_ns))
            ended = self._w('DELETE FROM sessions WHERE user = ?', (name,)).rowcount
            self.audit(now_ns, 'admin', 'user_set', '', f'{name} ({role})' + (
                f'; {ended} sessions ended' if ended else ''))

    def set_password_record(self, name: str, password_record: str, now_ns: int) -> None:
        """Replace the stored record of the same password (a rehash at a new cost): sessions
        stay valid."""
        with self.transaction():
            self._w('UPDATE users SET password = ? WHERE name = ?', (password_record, name))
            self.audit(now_ns, 'system', 'password_rehashed', '', name)

    def user(self, name: str) -> dict | None:
        rows = self._x('SELECT name, role, password, disabled FROM users WHERE name = ?', (name,))
        if not rows:
            return None
        r = rows[0]
        return {'name': r[0], 'role': r[1], 'password': r[2], 'disabled': bool(r[3])}

    def users(self) -> list[dict]:
        rows = self._x('SELECT name, role FROM users ORDER BY name')
        return [{'name': r[0], 'role': r[1]} for r in rows]

    def add_session(self, token_hash: str, user: str, csrf: str, now_ns: int,
                    expires_ns: int) -> None:
        with self.transaction():
            self._w('DELETE FROM sessions WHERE expires_ns < ?', (int(now_ns),))
            self._w('INSERT INTO sessions (token_hash, user, csrf, created_ns, expires_ns) '
                    'VALUES (?, ?, ?, ?, ?)', (token_hash, user, csrf, int(now_ns),
                                               int(expires_ns)))
            self.audit(now_ns, user, 'login')

    def session(self, token_hash: str) -> dict | None:
        rows = self._x('SELECT user, csrf, created_ns, expires_ns FROM sessions '
                       'WHERE token_hash = ?', (token_hash,))
        if not rows:
            return None
        r = rows[0]
        return {'user': r[0], 'csrf': r[1], 'created_ns': r[2], 'expires_ns': r[3]}

    def drop_session(self, token_hash: str, now_ns: int) -> None:
        with self.transaction():
            row = self._conn.execute('SELECT user FROM sessions WHERE token_hash = ?',
                                     (token_hash,)).fetchone()
            self._w('DELETE FROM sessions WHERE token_hash = ?', (token_hash,))
            if row:
                self.audit(now_ns, row[0], 'logout')
