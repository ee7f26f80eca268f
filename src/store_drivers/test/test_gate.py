"""Gate scans: parsing, rejection reasons, duplicate suppression, unique stamps."""
import pytest

from store_drivers.gate import GateDecoder, parse_scan, ScanDeduper, ScanRejected

S = 1_000_000_000


@pytest.mark.parametrize('text,account', [
    ('WOS1:acct-0042', 'acct-0042'),
    (b'WOS1:A_b-9\r', 'A_b-9'),
    ('  WOS1:x  ', 'x'),
    ('WOS1:' + 'a' * 64, 'a' * 64),
])
def test_parse_valid(text, account):
    assert parse_scan(text) == account


@pytest.mark.parametrize('text,reason', [
    ('WOS2:acct', 'wrong_prefix'),
    ('https://example.com', 'wrong_prefix'),
    ('wos1:acct', 'wrong_prefix'),
    ('WOS1:', 'bad_account_id'),
    ('WOS1:' + 'a' * 65, 'bad_account_id'),
    ('WOS1:acct 42', 'bad_account_id'),
    ('WOS1:acct/42', 'bad_account_id'),
    ('WOS1:acct\n42', 'bad_account_id'),
    (b'WOS1:\xff\xfe', 'not_ascii'),
    ('WOS1:caf\u00e9', 'not_ascii'),
    (b'W' * 1000, 'too_long'),
])
def test_parse_rejects_with_reason(text, reason):
    with pytest.raises(ScanRejected) as exc:
        parse_scan(text)
    assert exc.value.reason == reason


def test_dedupe_suppresses_double_reads_within_window():
    d = ScanDeduper(dedupe_s=2.0)
    assert d.accept('a', 10 * S)
    assert not d.accept('a', 10 * S + S // 2)        # double read
    assert d.accept('b', 10 * S + S // 2)            # another code is independent
    assert not d.accept('a', 12 * S)                  # window restarts with every read
    assert d.accept('a', 14 * S + 1)                  # 2 s after the last read
    assert d.suppressed == 2


def test_gate_decoder_counts_rejects_and_makes_unique_event_ids():
    g = GateDecoder('entrance', dedupe_s=1.0)
    s1, reason, why = g.feed(b'WOS1:alice', 5 * S)
    assert s1 and reason == why == '' and s1.event_id == f'entrance@{5 * S}'
    assert s1.account_id == 'alice'
    s2, _, _ = g.feed(b'WOS1:bob', 5 * S)                # same poll, same reception time
    assert s2.stamp_ns == 5 * S + 1 and s2.event_id != s1.event_id
    dup, reason, why = g.feed(b'WOS1:alice', 5 * S + 100)
    assert dup is None and reason == 'duplicate' and 'alice' in why
    bad, reason, why = g.feed(b'hello', 6 * S)
    assert bad is None and reason == 'wrong_prefix'
    assert 'entrance' in why and "b'hello'" in why
    assert g.rejected == {'wrong_prefix': 1}
    assert g.accepted == 2
