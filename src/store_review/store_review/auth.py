"""Reviewer accounts, login sessions and CSRF tokens (no web framework, no rclpy).

Passwords are stored as ``scrypt$n$r$p$<salt hex>$<hash hex>`` with a random 16-byte salt per
user (``hashlib.scrypt``, N=2^17, r=8, p=1 by default); never in plain text. A record of an
older cost is rewritten at the current one on the account's next successful login. An unknown
account name is checked against a dummy record of the same cost: one hash either way.

A login creates a random session token (sent to the browser as an HttpOnly, SameSite=Strict
cookie) and a random CSRF token; the database keeps only the SHA-256 of the session token, bound
to its user, with an expiry. A password reset ends the account's sessions. Every
state-changing request must carry the session's CSRF token; comparisons are constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from store_review.login_guard import HashGate, LoginRefused, LoginThrottle
from store_review.store import NS_PER_S, ReviewStore, ROLES

# today's recommended scrypt cost (OWASP password storage cheat sheet: N=2^17, r=8, p=1):
# 128 MiB and, on one core of the dev machine, about 0.3-0.5 s a hash. Records of another cost
# still verify and are rewritten at this cost at the account's next successful login.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 17, 8, 1
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 1024          # longer input is refused before any hashing
MAX_NAME_LEN = 64                # new accounts
MAX_LOGIN_NAME_LEN = 256         # a longer name at login is refused before any hashing
# a record asking for more than this is not verified (a record from an edited database must
# not make a login allocate gigabytes): N <= 2^20, r <= 32, p <= 4, 128 * r * N <= 256 MiB
_MAX_N, _MAX_R, _MAX_P, _MAX_MEM = 2 ** 20, 32, 4, 256 << 20


class AuthError(Exception):
    """Login or session refused; ``str()`` is safe to show (says nothing about which part)."""


def _cost_ok(n: int, r: int, p: int) -> bool:
    return (2 <= n <= _MAX_N and not n & (n - 1) and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P
            and 128 * r * n <= _MAX_MEM)


class PasswordHasher:
    """scrypt with one cost for new records; verifies records of any (bounded) cost.

    :meth:`derive` is the only place that runs scrypt (tests count its calls).
    """

    def __init__(self, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P):
        if not _cost_ok(n, r, p):
            raise ValueError(f'scrypt cost n={n} r={r} p={p} out of range')
        self.n, self.r, self.p = n, r, p

    @property
    def params(self) -> tuple[int, int, int]:
        return self.n, self.r, self.p

    def derive(self, password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        # scrypt needs 128 * r * n bytes (+ 128 * r * p); hashlib's default cap is 32 MiB
        maxmem = 128 * r * (n + p + 2) + (16 << 20)
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=maxmem)

    def hash(self, password: str, salt: bytes | None = None) -> str:
        if not isinstance(password, str) or not password:
            raise ValueError('empty password')
        salt = secrets.token_bytes(16) if salt is None else salt
        digest = self.derive(password.encode('utf-8'), salt, self.n, self.r, self.p)
        return f'scrypt${self.n}${self.r}${self.p}${salt.hex()}${digest.hex()}'

    @staticmethod
    def parse(record: str) -> tuple[int, int, int, bytes, str] | None:
        """(n, r, p, salt, hash hex) of a well-formed record within the cost bounds."""
        try:
            kind, n, r, p, salt_hex, hash_hex = record.split('$')
            n, r, p = int(n), int(r), int(p)
            salt = bytes.fromhex(salt_hex)
        except (ValueError, TypeError, AttributeError):
            return None
        if kind != 'scrypt' or not _cost_ok(n, r, p):
            return None
        return n, r, p, salt, hash_hex

    def verify(self, password: str, record: str) -> bool:
        """Exactly one scrypt run for a well-formed record; none for a malformed one."""
        parsed = self.parse(record)
        if parsed is None or not isinstance(password, str):
            return False
        n, r, p, salt, hash_hex = parsed
        digest = self.derive(password.encode('utf-8'), salt, n, r, p)
        return hmac.compare_digest(digest.hex(), hash_hex)

    def needs_rehash(self, record: str) -> bool:
        """True when ``record`` was made with another cost than this hasher's."""
        parsed = self.parse(record)
        return parsed is None or parsed[:3] != self.params


DEFAULT_HASHER = PasswordHasher()


def hash_password(password: str, salt: bytes | None = None) -> str:
    return DEFAULT_HASHER.hash(password, salt)


def verify_password(password: str, record: str) -> bool:
    return DEFAULT_HASHER.verify(password, record)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode('utf-8')).hexdigest()


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    csrf: str
    token: str = ''          # only set right after login (for the cookie)


class Auth:
    """Accounts and sessions on top of a :class:`ReviewStore`."""

    def __init__(self, store: ReviewStore, session_ttl_s: float = 8 * 3600.0,
                 hasher: PasswordHasher | None = None, throttle: LoginThrottle | None = None,
                 gate: HashGate | None = None):
        self.store = store
        self.session_ttl_ns = int(session_ttl_s * NS_PER_S)
        self.hasher = hasher or DEFAULT_HASHER
        self.throttle = LoginThrottle() if throttle is None else throttle
        self.gate = HashGate() if gate is None else gate
        self._dummy = ''
        self._dummy_lock = threading.Lock()

    def dummy_record(self) -> str:
        """A record of this hasher's cost no password matches: an unknown name is checked
        against it, so that it costs exactly one hash like a known one. Made once (the
        service makes it at start, so that no login pays for it)."""
        with self._dummy_lock:
            if not self._dummy:
                self._dummy = self.hasher.hash(secrets.token_urlsafe(24))
            return self._dummy

    def add_user(self, name: str, role: str, password: str, now_ns: int) -> None:
        if role not in ROLES:
            raise ValueError(f'role must be one of {", ".join(ROLES)}')
        if not name or not name.replace('-', '').replace('_', '').isalnum() or \
                len(name) > MAX_NAME_LEN:
            raise ValueError('user name: 1-64 letters, digits, "-" or "_"')
        if len(password) < MIN_PASSWORD_LEN:
            raise ValueError(f'password must have at least {MIN_PASSWORD_LEN} characters')
        self.store.add_user(name, role, self.hasher.hash(password), now_ns)

    def login(self, name: str, password: str, now_ns: int, client: str = '') -> Session:
        """A new session for ``name``; AuthError for a wrong name or password, LoginRefused
        (nothing checked) while the account or the client address ``client`` is throttled or
        too many logins are being checked at once."""
        name = str(name)[:MAX_LOGIN_NAME_LEN + 1]
        self.throttle.begin(name, client)          # counts as a failure until it succeeds
        if len(name) > MAX_LOGIN_NAME_LEN or not password or len(password) > MAX_PASSWORD_LEN:
            raise AuthError('unknown user or wrong password')
        try:
            with self.gate.slot():
                user = self.store.user(name)
                # one hash whether the name is known or not: timing does not tell which
                record = user['password'] if user else self.dummy_record()
                ok = self.hasher.verify(password, record)
                if user is None or user['disabled'] or not ok:
                    raise AuthError('unknown user or wrong password')
                if self.hasher.needs_rehash(record):
                    # an older cost: store it at today's (the password is at hand only now)
                    self.store.set_password_record(name, self.hasher.hash(password), now_ns)
        except LoginRefused:
            self.throttle.cancel(name, client)
            raise
        self.throttle.succeeded(name, client)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        self.store.add_session(token_hash(token), name, csrf, now_ns,
                               now_ns + self.session_ttl_ns)
        return Session(user=name, role=user['role'], csrf=csrf, token=token)

    def session(self, token: str | None, now_ns: int) -> Session:
        """The session of a cookie token; AuthError when missing, forged, expired or revoked."""
        if not token:
            raise AuthError('not logged in')
        s = self.store.session(token_hash(token))
        if s is None or s['expires_ns'] <= now_ns:
            raise AuthError('session expired or invalid')
        user = self.store.user(s['user'])
        if user is None or user['disabled']:
            raise AuthError('session expired or invalid')
        return Session(user=s['user'], role=user['role'], csrf=s['csrf'])

    @staticmethod
    def check_csrf(session: Session, presented: str | None) -> None:
        if not presented or not hmac.compare_digest(session.csrf, presented):
            raise AuthError('invalid CSRF token')

    def logout(self, token: str, now_ns: int) -> None:
        self.store.drop_session(token_hash(token), now_ns)
