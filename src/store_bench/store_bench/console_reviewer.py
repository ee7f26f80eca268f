"""A simulated reviewer that works the live graph's review console over HTTP (benches only).

It does what a person at the console does, through the same web server, login, CSRF check and
decision path: log in, watch the queue (``GET /api/queue``), open each request
(``GET /api/r/<seq>``: its answers, each with its ``choice``) and, ``delay_s`` after it first
saw it, post one answer (``POST /r/<seq>/decide``). The answer comes from the run's truth: the
receipt recorder's ``ground_truth.jsonl`` in the run folder, read again for every request and
matched to the request by :meth:`store_bench.reviewer_sim.SimulatedReviewer.truth_for` (the
action on one of its plates around its hand-in and settled stamps). The choice is the offered
answer equal to the truth (shopper, SKU, action, quantity); "nothing was taken" when no action
matches and the machine offered it; otherwise "cannot tell" (``NO_CHANGE``), which teaches
nothing, and the record says the truth was not offered. With ``error_rate`` it picks another
offered answer instead. Each answer is appended to ``<run_dir>/reviewer_answers.jsonl``.

Used by ``bench_live_graph --reviewer-delay-s`` and ``learning_days_live``; needs a reviewer
account in the run's review database (:func:`add_account`) before the graph starts.
"""
from __future__ import annotations

import http.cookiejar
import json
import os
import pathlib
import random
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace

from store_review.service import NO_CHANGE

from store_bench.reviewer_sim import SimulatedReviewer

USER = 'sim-reviewer'


def add_account(run_dir: str | pathlib.Path, password: str, user: str = USER,
                env: dict | None = None) -> None:
    """A reviewer account in ``<run_dir>/review.sqlite`` (the review node opens the same file),
    made with the store's own ``review_users`` command."""
    run = pathlib.Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    env = dict(env if env is not None else os.environ, REVIEW_PASSWORD=password)
    subprocess.run(['review_users', '--db', str(run / 'review.sqlite'), 'add', '--role',
                    'reviewer', user], env=env, check=True, stdout=subprocess.DEVNULL)


def pick_choice(choices: list[dict], truth) -> tuple[int, str]:
    """(the choice for ``truth`` (a ``TruthAction`` or None), how it was found: ``exact``,
    ``nothing`` (no action: "nothing was taken or returned" offered), ``not offered``)."""
    if truth is None:
        for c in choices:
            if c['choice'] != NO_CHANGE and (not c['sku'] or c['quantity'] <= 0):
                return c['choice'], 'nothing'
        return NO_CHANGE, 'not offered'
    key = (truth.shopper_id, truth.sku, int(truth.action), int(truth.quantity))
    for c in choices:
        if (c['shopper_id'], c['sku'], int(c['action']), int(c['quantity'])) == key:
            return c['choice'], 'exact'
    return NO_CHANGE, 'not offered'


class ConsoleReviewer:

    def __init__(self, run_dir: str | pathlib.Path, password: str, user: str = USER,
                 delay_s: float = 5.0, poll_s: float = 0.5, error_rate: float = 0.0,
                 seed: int = 0, url: str | None = None):
        if delay_s < 0 or poll_s <= 0:
            raise ValueError(f'delay_s must be >= 0 and poll_s > 0 (got {delay_s}, {poll_s})')
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f'error_rate must be in 0..1, got {error_rate}')
        self.run = pathlib.Path(run_dir)
        self.user, self.password = user, password
        self.delay_s, self.poll_s, self.error_rate = delay_s, poll_s, error_rate
        self.rng = random.Random(seed)
        self.url = url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.seen: dict[int, float] = {}          # seq -> monotonic time first seen
        self.done: set[int] = set()
        self.answers: list[dict] = []
        self.errors: list[str] = []
        # refused connections before the console first answered: it is still starting (the
        # graph starts it with the other nodes), which is waiting, not an error
        self.console_waits = 0
        # refused connections after it had answered, with nothing left to answer: the console
        # has closed (the graph stops it when the run ends); with requests still unanswered
        # they are errors
        self.console_gone = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- HTTP ---------------------------------------------------------------------------------
    def _call(self, path: str, data: dict | None = None, headers: dict | None = None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.url.rstrip('/') + path, data=body,
                                     headers={'Accept': 'application/json', **(headers or {})})
        with self.opener.open(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw[:1] in (b'{', b'[') else raw

    def login(self) -> None:
        self._call('/login', {'username': self.user, 'password': self.password})
        self._call('/api/queue')           # raises HTTPError 401 when the login did not take

    # --- one pass -----------------------------------------------------------------------------
    def step(self) -> int:
        """Look at the queue once and answer what is due; returns how many were answered."""
        now = time.monotonic()
        queue = self._call('/api/queue')['requests']
        for r in queue:
            self.seen.setdefault(int(r['seq']), now)
        n = 0
        for seq, first in sorted(self.seen.items()):
            if seq in self.done or now - first < self.delay_s:
                continue
            self.done.add(seq)
            try:
                d = self._call(f'/api/r/{seq}')
            except urllib.error.HTTPError as exc:     # expired or decided by someone else
                self.errors.append(f'request {seq}: {exc.code}')
                continue
            if d['status'] == 'decided':
                continue
            n += self._answer(seq, d)
        return n

    def _answer(self, seq: int, d: dict) -> int:
        truth_src = SimulatedReviewer.from_ground_truth(self.run / 'ground_truth.jsonl')
        req = SimpleNamespace(event_id=d['event_id'], stamp_ns=int(d['stamp_ns']),
                              plate_ids=tuple(d['plate_ids']))
        truth = truth_src.truth_for(req)
        choice, how = pick_choice(d['choices'], truth)
        wrong = False
        if self.error_rate and self.rng.random() < self.error_rate:
            others = [c['choice'] for c in d['choices'] if c['choice'] != choice]
            if others:
                choice, wrong = self.rng.choice(others), True
        try:
            self._call(f'/r/{seq}/decide', {'choice': choice},
                       {'X-CSRF-Token': d['csrf_token']})
        except urllib.error.HTTPError as exc:
            self.errors.append(f'decide {seq}: {exc.code}')
            return 0
        rec = {'seq': seq, 'request_id': d['request_id'], 'spot_check': d['spot_check'],
               'choice': choice, 'how': how, 'deliberately_wrong': wrong,
               'truth': (None if truth is None else
                         {'shopper_id': truth.shopper_id, 'sku': truth.sku,
                          'action': int(truth.action), 'quantity': int(truth.quantity)})}
        self.answers.append(rec)
        with open(self.run / 'reviewer_answers.jsonl', 'a', encoding='utf-8') as f:
            f.write(json.dumps(rec, sort_keys=True) + '\n')
        return 1

    # --- in the background, for one run -------------------------------------------------------
    def _loop(self) -> None:
        url_file = self.run / 'review_url.txt'
        while self.url is None and not self._stop.is_set():
            if url_file.is_file() and url_file.read_text().strip():
                self.url = url_file.read_text().strip()
            else:
                self._stop.wait(self.poll_s)
        logged_in = connected = False
        while not self._stop.is_set():
            try:
                if not logged_in:
                    self.login()
                    logged_in = connected = True
                self.step()
            except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
                # the console is not up yet, or restarting: try again
                if not connected and _refused(exc):
                    self.console_waits += 1
                elif connected and _refused(exc) and not self.unanswered():
                    self.console_gone += 1
                elif len(self.errors) < 1000:
                    self.errors.append(f'{type(exc).__name__}: {exc}')
                logged_in = logged_in and not (
                    isinstance(exc, urllib.error.HTTPError) and exc.code == 401)
            self._stop.wait(self.poll_s)

    def unanswered(self) -> list[int]:
        """The requests seen in the queue and not yet answered."""
        return sorted(set(self.seen) - self.done)

    def start(self) -> 'ConsoleReviewer':
        self._thread = threading.Thread(target=self._loop, name='console-reviewer', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def summary(self) -> dict:
        by = {}
        for a in self.answers:
            by[a['how']] = by.get(a['how'], 0) + 1
        return {'answered': len(self.answers),
                'spot_checks': sum(a['spot_check'] for a in self.answers),
                'by_how': by, 'console_waits': self.console_waits,
                'console_gone': self.console_gone, 'errors': len(self.errors),
                'first_errors': self.errors[:3]}


def summary_text(summary: dict | None) -> str:
    """One line of a reviewer's :meth:`ConsoleReviewer.summary`: what it answered, and its
    errors with the first one (waiting for the console and its closing are not errors)."""
    if not summary:
        return 'no reviewer'
    text = (f'reviewer answered {summary["answered"]} '
            f'({summary["spot_checks"]} spot checks), {summary["errors"]} errors')
    if summary.get('first_errors'):
        text += f' (first: {summary["first_errors"][0]})'
    return text


def _refused(exc: BaseException) -> bool:
    """A connection refused (the server is not listening yet), directly or inside urllib's
    URLError."""
    return isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, urllib.error.URLError)
        and isinstance(getattr(exc, 'reason', None), ConnectionRefusedError))
