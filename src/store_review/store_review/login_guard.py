"""Login abuse limits: throttling with lock-out per account and per client address, and a bound
on password hashes in flight (no web framework, no rclpy).

Throttle
    Each key (an account name, whether it exists or not, and a client address) counts failed
    logins; a count is forgotten ``window_s`` after its last failure. Up to ``free_failures``
    cost nothing; each further one makes the key wait ``base_delay_s``, doubling per failure
    (at most ``max_delay_s``) after its last failure; from ``lockout_failures`` on the key is
    locked for ``lockout_s``. While a key waits or is locked every login through it is refused
    before any hashing, the right password included (the caller answers 429 with Retry-After).
    An attempt counts as a failure when it starts (so parallel guesses cannot slip past the
    count) and is taken back when it succeeds; a success also clears the account's count.
    At most ``max_keys`` keys are kept (expired ones dropped first, then the least recently
    used), so sprayed names cannot exhaust memory.

Hash gate
    scrypt at today's cost takes 128 MiB and ~0.5 s a run: at most ``running`` hashes run at
    once, at most ``waiting`` more wait for a slot (up to ``wait_s``); beyond that a login is
    refused at once (429), so a flood of logins can neither exhaust memory nor tie up the web
    server's worker threads that serve the other pages.

The clock is injected (seconds, monotonic); tests step it instead of sleeping.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator


class LoginRefused(Exception):
    """A login refused before its password was checked; ``retry_after_s`` says when to retry.

    ``str()`` is safe to show: it says nothing about whether the account exists.
    """

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = max(1, int(math.ceil(retry_after_s)))


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 5         # failures in a window that cost nothing
    base_delay_s: float = 1.0      # wait after the first failure beyond them, doubling
    max_delay_s: float = 60.0
    lockout_failures: int = 10     # from this many failures on: locked
    lockout_s: float = 900.0       # for this long after the last failure
    window_s: float = 900.0        # a key's failures are forgotten this long after its last

    def __post_init__(self):
        if not 0 <= self.free_failures < self.lockout_failures:
            raise ValueError('need 0 <= free_failures < lockout_failures')
        if min(self.base_delay_s, self.max_delay_s, self.lockout_s, self.window_s) <= 0:
            raise ValueError('delays and windows must be positive')

    def wait_s(self, failures: int) -> float:
        """How long after the last failure a key with ``failures`` must wait."""
        if failures >= self.lockout_failures:
            return self.lockout_s
        if failures < self.free_failures:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** (failures - self.free_failures))


ACCOUNT_POLICY = ThrottlePolicy()
ADDRESS_POLICY = ThrottlePolicy(free_failures=20, lockout_failures=50)


class LoginThrottle:
    """Failure counts per account and per client address (thread-safe)."""

    def __init__(self, account: ThrottlePolicy = ACCOUNT_POLICY,
                 address: ThrottlePolicy = ADDRESS_POLICY,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000):
        self.policies = {'account': account, 'address': address}
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[str, str], list] = OrderedDict()   # [failures, last_s]

    def _entry(self, key: tuple[str, str], now: float) -> list | None:
        e = self._keys.get(key)
        if e is not None and now - e[1] >= self.policies[key[0]].window_s:
            del self._keys[key]
            return None
        return e

    def retry_after_s(self, kind: str, name: str) -> float:
        """Seconds until ``kind`` ('account' or 'address') ``name`` may try again (0: now)."""
        with self._lock:
            now = self.clock()
            e = self._entry((kind, name), now)
            return 0.0 if e is None else max(0.0, e[1] + self.policies[kind].wait_s(e[0]) - now)

    def begin(self, account: str, address: str) -> None:
        """Admit a login attempt (counted as a failure until ``succeeded``) or raise
        :class:`LoginRefused`."""
        with self._lock:
            now = self.clock()
            keys = (('account', account), ('address', address))
            waits = []
            for key in keys:
                e = self._entry(key, now)
                if e is not None:
                    waits.append(e[1] + self.policies[key[0]].wait_s(e[0]) - now)
            wait = max(waits, default=0.0)
            if wait > 0:
                raise LoginRefused('too many failed logins: try again later', wait)
            for key in keys:
                e = self._entry(key, now)
                if e is None:
                    e = self._keys[key] = [0, now]
                e[0] += 1
                e[1] = now
                self._keys.move_to_end(key)
            self._prune(now)

    def succeeded(self, account: str, address: str) -> None:
        """The attempt begun for ``account`` from ``address`` had the right password."""
        with self._lock:
            self._keys.pop(('account', account), None)
            self._take_back(('address', address))

    def cancel(self, account: str, address: str) -> None:
        """The attempt begun was never checked (the server was busy): it does not count."""
        with self._lock:
            self._take_back(('account', account))
            self._take_back(('address', address))

    def _take_back(self, key: tuple[str, str]) -> None:
        e = self._keys.get(key)
        if e is not None:
            e[0] -= 1
            if e[0] <= 0:
                del self._keys[key]

    def _prune(self, now: float) -> None:
        if len(self._keys) <= self.max_keys:
            return
        for key in [k for k, e in self._keys.items()
                    if now - e[1] >= self.policies[k[0]].window_s]:
            del self._keys[key]
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def __len__(self) -> int:
        return len(self._keys)


class HashGate:
    """At most ``running`` password hashes at once, at most ``waiting`` more queued."""

    def __init__(self, running: int = 2, waiting: int = 6, wait_s: float = 10.0):
        if running < 1 or waiting < 0:
            raise ValueError('need running >= 1 and waiting >= 0')
        self.running, self.waiting, self.wait_s = running, waiting, wait_s
        self._slots = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self.inside = 0          # running plus waiting now

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self.inside >= self.running + self.waiting:
                raise LoginRefused('too many logins at once: try again in a moment', 1.0)
            self.inside += 1
        try:
            if not self._slots.acquire(timeout=self.wait_s):
                raise LoginRefused('too many logins at once: try again in a moment', 1.0)
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self.inside -= 1
