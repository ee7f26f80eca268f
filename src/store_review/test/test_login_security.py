"""Login security: hash counts (no user enumeration by timing), sessions ended by a password
reset, the scrypt cost and rehashing, throttling and lock-out, the bound on hashes in flight."""
import pytest

from store_review.auth import Auth, AuthError, PasswordHasher
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
