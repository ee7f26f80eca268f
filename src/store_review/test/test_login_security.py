"""Login security: hash counts (no user enumeration by timing), sessions ended by a password
reset, the scrypt cost and rehashing, throttling and lock-out, the bound on hashes in flight."""
import threading
import time

from fastapi.testclient import TestClient
import pytest

from store_review.auth import Auth, AuthError, PasswordHasher
from store_review.console import create_app
from store_review.login_guard import HashGate, LoginRefused, LoginThrottle, ThrottlePolicy
from store_review.service import ReviewService
from store_review.store import ReviewStore

S = 1_000_000_000


class CountingHasher(PasswordHasher):
    """Counts scrypt runs (every hash and every verification runs exactly one)."""

    def __init__(self, **kw):
        super().__init__(**({'n': 2 ** 4} | kw))
        self.calls = 0

    def derive(self, *args):
        self.calls += 1
        return super().derive(*args)


@pytest.fixture
def auth(tmp_path):
    a = Auth(ReviewStore(tmp_path / 'r.sqlite'), session_ttl_s=3600, hasher=CountingHasher())
    a.add_user('alice', 'reviewer', 'alice-password', 0)
    with pytest.raises(AuthError):      # a first login makes whatever is made once
        a.login('warm-up', 'warm-up-password', 0)
    return a


def hashes(auth, name, password):
    before = auth.hasher.calls
    try:
        auth.login(name, password, S)
    except AuthError:
        pass
    return auth.hasher.calls - before


def test_known_and_unknown_names_cost_exactly_one_hash(auth):
    assert hashes(auth, 'mallory', 'alice-password') == 1
    assert hashes(auth, 'mallory', 'other-password') == 1
    assert hashes(auth, 'alice', 'wrong-password') == 1
    assert hashes(auth, 'alice', 'alice-password') == 1
    # the dummy record has the cost of a real one
    assert auth.hasher.parse(auth.dummy_record())[:3] == auth.hasher.parse(
        auth.store.user('alice')['password'])[:3]


def test_a_password_reset_ends_the_accounts_sessions(auth):
    a = auth.login('alice', 'alice-password', S)
    b = auth.login('alice', 'alice-password', S)
    auth.add_user('bob', 'reviewer', 'bob-password', 0)
    other = auth.login('bob', 'bob-password', S)
    auth.add_user('alice', 'reviewer', 'new-alice-password', 2 * S)     # the reset
    for s in (a, b):
        with pytest.raises(AuthError):
            auth.session(s.token, 3 * S)
    assert auth.session(other.token, 3 * S).user == 'bob'
    with pytest.raises(AuthError):
        auth.login('alice', 'alice-password', 3 * S)
    assert auth.session(auth.login('alice', 'new-alice-password', 3 * S).token, 4 * S)


def test_the_default_cost_is_n_2_17_r_8_p_1():
    from store_review.auth import DEFAULT_HASHER, SCRYPT_N, SCRYPT_P, SCRYPT_R
    assert (SCRYPT_N, SCRYPT_R, SCRYPT_P) == (2 ** 17, 8, 1)
    assert PasswordHasher().params == DEFAULT_HASHER.params == (2 ** 17, 8, 1)


def test_an_old_cost_record_verifies_and_is_rewritten_at_the_new_cost(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    old = CountingHasher(n=2 ** 4)
    Auth(store, hasher=old).add_user('alice', 'reviewer', 'alice-password', 0)
    Auth(store, hasher=old).add_user('bob', 'reviewer', 'bob-password', 0)
    before = store.user('alice')['password']
    assert before.startswith('scrypt$16$8$1$')
    new = Auth(store, hasher=CountingHasher(n=2 ** 6))
    s = new.login('bob', 'bob-password', S)             # a session from before the rehash
    with pytest.raises(AuthError):
        new.login('alice', 'wrong-password', S)
    assert store.user('alice')['password'] == before      # only a right password rewrites
    new.login('alice', 'alice-password', S)
    after = store.user('alice')['password']
    assert after.startswith('scrypt$64$8$1$') and after != before
    assert new.hasher.verify('alice-password', after)
    assert not new.hasher.needs_rehash(after)
    calls = new.hasher.calls
    new.login('alice', 'alice-password', S)              # no second rewrite
    assert new.hasher.calls == calls + 1 and store.user('alice')['password'] == after
    assert new.session(s.token, 2 * S).user == 'bob'     # a rehash ends no session


# --- throttling, lock-out, hashes in flight ---------------------------------------------------
class SteppedClock:
    def __init__(self):
        self.s = 1000.0

    def __call__(self):
        return self.s


def test_delays_grow_then_lock_out_and_are_forgotten_after_the_window():
    p = ThrottlePolicy(free_failures=5, base_delay_s=1, max_delay_s=60, lockout_failures=10,
                       lockout_s=900, window_s=900)
    assert [p.wait_s(f) for f in range(12)] == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 900, 900]
    clock = SteppedClock()
    t = LoginThrottle(p, p, clock=clock)
    for _ in range(5):
        t.begin('alice', 'a1')
    with pytest.raises(LoginRefused) as e:
        t.begin('alice', 'a2')                  # another address: the account still waits
    assert e.value.retry_after_s == 1
    clock.s += 1
    t.begin('alice', 'a2')
    with pytest.raises(LoginRefused) as e:
        t.begin('alice', 'a3')
    assert e.value.retry_after_s == 2
    t.begin('bob', 'a3')                        # other accounts from other addresses: free
    clock.s += 900
    t.begin('alice', 'a1')                       # forgotten
    t.succeeded('alice', 'a1')
    assert t.retry_after_s('account', 'alice') == 0


def test_the_throttle_keeps_a_bounded_number_of_keys():
    clock = SteppedClock()
    t = LoginThrottle(clock=clock, max_keys=100)
    for k in range(1000):
        t.begin(f'user{k}', f'10.0.{k // 256}.{k % 256}')
    assert len(t) <= 100


def console_with_clock(tmp_path):
    clock = SteppedClock()
    svc = ReviewService(ReviewStore(tmp_path / 'r.sqlite'), lambda d: None, lambda: S,
                        hasher=CountingHasher(), throttle=LoginThrottle(clock=clock))
    svc.auth.add_user('alice', 'reviewer', 'alice-password', 0)
    return svc, clock, TestClient(create_app(svc))


def post_login(c, password, name='alice'):
    return c.post('/login', data={'username': name, 'password': password},
                  follow_redirects=False)


def test_wrong_passwords_past_the_limit_lock_the_account_even_for_the_right_one(tmp_path):
    svc, clock, c = console_with_clock(tmp_path)
    for _ in range(5):
        assert post_login(c, 'wrong-password').status_code == 401
    r = post_login(c, 'alice-password')
    assert r.status_code == 429 and r.headers['retry-after'] == '1'
    calls = svc.auth.hasher.calls
    failures = 5
    while failures < 10:                        # keep guessing, waiting out each delay
        clock.s += int(post_login(c, 'wrong-password').headers.get('retry-after', 0))
        r = post_login(c, 'wrong-password')
        assert r.status_code == 401
        failures += 1
    assert svc.auth.hasher.calls == calls + 5   # refused attempts hash nothing
    r = post_login(c, 'alice-password')
    assert r.status_code == 429 and int(r.headers['retry-after']) == 900
    clock.s += 899
    assert post_login(c, 'alice-password').status_code == 429
    clock.s += 1
    assert post_login(c, 'alice-password').status_code == 303
    assert post_login(c, 'wrong-password').status_code == 401   # counts start over


def test_many_accounts_from_one_address_are_throttled_by_address(tmp_path):
    clock = SteppedClock()
    auth = Auth(ReviewStore(tmp_path / 'r.sqlite'), hasher=CountingHasher(),
                throttle=LoginThrottle(clock=clock))
    auth.add_user('alice', 'reviewer', 'alice-password', 0)
    for k in range(20):
        with pytest.raises(AuthError):
            auth.login(f'guess{k}', 'password1', S, client='203.0.113.9')
    with pytest.raises(LoginRefused):
        auth.login('alice', 'alice-password', S, client='203.0.113.9')
    assert auth.login('alice', 'alice-password', S, client='198.51.100.1').user == 'alice'


class BlockingHasher(CountingHasher):
    """Holds every scrypt run until released; records how many ran at once."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.now = self.most = 0

    def derive(self, *args):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            self.release.wait(30)
            return super().derive(*args)
        finally:
            with self.lock:
                self.now -= 1


def test_concurrent_logins_never_run_more_than_the_bound_of_hashes(tmp_path):
    hasher = BlockingHasher()
    free = ThrottlePolicy(free_failures=1000, lockout_failures=1001)
    auth = Auth(ReviewStore(tmp_path / 'r.sqlite'), hasher=hasher,
                throttle=LoginThrottle(free, free), gate=HashGate(running=2, waiting=6))
    hasher.release.set()
    auth.add_user('alice', 'reviewer', 'alice-password', 0)
    auth.dummy_record()
    hasher.release.clear()
    hasher.most = 0
    outcomes = []

    def attempt(k):
        try:
            auth.login('alice' if k % 2 else f'user{k}', 'alice-password', S, client=f'c{k}')
            outcomes.append('ok')
        except LoginRefused:
            outcomes.append('busy')
        except AuthError:
            outcomes.append('wrong')

    threads = [threading.Thread(target=attempt, args=(k,)) for k in range(40)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 30
    while (outcomes.count('busy') < 32 or hasher.now < 2) and time.monotonic() < deadline:
        time.sleep(0.01)                        # waiting for the threads, not a timed check
    assert outcomes.count('busy') == 32 and auth.gate.inside == 8 and hasher.now == 2
    hasher.release.set()
    for th in threads:
        th.join(30)
    assert hasher.most == 2
    assert outcomes.count('busy') == 32 and len(outcomes) == 40
    # refused attempts were not counted as failures
    assert auth.throttle.retry_after_s('account', 'alice') == 0


def test_behind_a_trusted_proxy_logins_are_throttled_by_the_forwarded_client():
    from store_review.console import client_address
    assert client_address('10.1.1.1', '6.6.6.6', ()) == '10.1.1.1'       # header ignored
    assert client_address('10.1.1.1', '6.6.6.6', ('127.0.0.1',)) == '10.1.1.1'
    assert client_address('127.0.0.1', '6.6.6.6, 10.2.2.2', ('127.0.0.1',)) == '10.2.2.2'
    assert client_address('127.0.0.1', '', ('127.0.0.1',)) == '127.0.0.1'
    assert client_address('127.0.0.1', '10.2.2.2, 127.0.0.1', ('127.0.0.1',)) == '10.2.2.2'


def test_a_proxied_address_is_locked_out_alone(tmp_path):
    clock = SteppedClock()
    svc = ReviewService(ReviewStore(tmp_path / 'r.sqlite'), lambda d: None, lambda: S,
                        hasher=CountingHasher(), throttle=LoginThrottle(clock=clock))
    svc.auth.add_user('alice', 'reviewer', 'alice-password', 0)
    c = TestClient(create_app(svc, trusted_proxies=('testclient',)))
    bad = {'X-Forwarded-For': '203.0.113.9'}
    for k in range(20):
        assert c.post('/login', data={'username': f'guess{k}', 'password': 'password1'},
                      headers=bad).status_code == 401
    assert c.post('/login', data={'username': 'alice', 'password': 'alice-password'},
                  headers=bad, follow_redirects=False).status_code == 429
    assert c.post('/login', data={'username': 'alice', 'password': 'alice-password'},
                  headers={'X-Forwarded-For': '198.51.100.1'},
                  follow_redirects=False).status_code == 303
