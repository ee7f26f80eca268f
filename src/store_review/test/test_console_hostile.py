"""Hostile text in every field that reaches a console page is shown as text, never as markup.

Request ids, plate and gondola ids, details, shopper ids, SKUs, receipt ids and notes, evidence
names, reviewer names and the cart's refusal reasons all come from outside the console (DDS
messages, the database); each gets a payload that would open a tag, close the SVG, add an event
handler attribute or start a script if it were written unescaped.
"""
from html.parser import HTMLParser

from fastapi.testclient import TestClient
from helpers import S
import pytest

from store_cart.model import CandidateData, ReviewRequestData
from store_review.auth import PasswordHasher
from store_review.console import COOKIE, create_app
from store_review.evidence import trace_svg
from store_review.service import ReviewService
from store_review.store import ReviewStore

FAST = PasswordHasher(n=2 ** 4)


def hostile(tag: str) -> str:
    """Markup that would run script or add an element with id ``pwn-<tag>`` if not escaped."""
    return (f'{tag}<script>alert("{tag}")</script>"><img src=x onerror=alert("{tag}")>'
            f"'><b id=pwn-{tag}>x</b></svg><svg onload=alert(1)></text><text id=pwn-{tag}>"
            f'</title><iframe srcdoc="<script>parent.x=1</script>">&amp;')


class Markup(HTMLParser):
    """Every element and every script body of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == 'script'
        if tag == 'script':
            self.scripts.append('')

    def handle_endtag(self, tag):
        if tag == 'script':
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def assert_no_live_markup(page: str) -> Markup:
    m = Markup()
    m.feed(page)
    m.close()
    for tag, attrs in m.elements:
        live = tag == 'iframe' or (tag == 'img' and attrs.get('src') == 'x')
        assert not live, (tag, attrs)
        assert not any(a.startswith('on') for a in attrs), (tag, attrs)
        assert not str(attrs.get('id', '')).startswith('pwn'), (tag, attrs)
        assert 'srcdoc' not in attrs, (tag, attrs)
    for body in m.scripts:
        assert 'alert' not in body and 'parent.x' not in body, body
    return m


def test_trace_svg_escapes_plate_names_and_labels():
    svg = trace_svg([{'name': hostile('plate'), 'payload': {
        't0_ns': 0, 't1_ns': 4 * S, 't_ms': [0, 1000], 'grams': [1.0, 2.0]}}],
        marks_ns=[(S, hostile('mark'))])
    m = assert_no_live_markup(svg)
    assert hostile('plate') in ''.join(m.text)       # shown, as text
    assert [t for t, _ in m.elements].count('svg') == 1


@pytest.fixture
def hostile_console(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    published = []
    service = ReviewService(store, published.append, lambda: 100 * S, session_ttl_s=3600,
                            hasher=FAST)
    plate = hostile('plate')
    event = f'{plate}@1000000000'
    req = ReviewRequestData(
        request_id=f'review/{event}', event_id=event, reason=99, detail=hostile('detail'),
        gondola_id=hostile('gondola'), plate_ids=(plate,), delta_grams=-352.0,
        shopper_ids=(hostile('acct1'), hostile('acct2')),
        candidates=(CandidateData(hostile('acct1'), hostile('sku'), 1, 1, 0.5),
                    CandidateData(hostile('acct2'), hostile('sku'), 2, 1, 0.4)),
        stamp_ns=2 * S)
    assert service.on_request(req)
    store.add_evidence(req.request_id, 'weight_trace', plate, 0, {
        't0_ns': 0, 't1_ns': 4 * S, 't_ms': [0, 1000, 2000], 'grams': [1000.0, 648.0, 648.0]})
    store.add_evidence(req.request_id, 'image', hostile('camera'), S, {}, str(tmp_path / 'x'))
    store.add_receipt({'receipt_id': hostile('receipt'), 'revision': 1,
                       'shopper_id': hostile('acct1'), 'total_cents': 129,
                       'pending_reviews': 1, 'correction_note': hostile('note'),
                       'exited_ns': 0, 'lines': []})
    # a reviewer name the console's own form would refuse, as an older or edited db may hold
    store.add_user(hostile('user'), 'supervisor', FAST.hash('user-password'), 0)
    return service, req, published


def test_hostile_fields_are_text_on_every_page(hostile_console):
    service, req, published = hostile_console
    c = TestClient(create_app(service))
    r = c.post('/login', data={'username': hostile('user'), 'password': 'user-password'},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    pages = {'queue': c.get('/').text, 'request': c.get('/r/1').text}
    for page in pages.values():
        assert_no_live_markup(page)
    text = ''.join(assert_no_live_markup(pages['request']).text)
    for field in ('plate', 'detail', 'acct1', 'sku', 'note', 'receipt', 'user'):
        assert hostile(field) in text, field
    queue_text = ''.join(assert_no_live_markup(pages['queue']).text)
    assert hostile('acct2') in queue_text and hostile('plate') in queue_text
    csrf = c.cookies.get(COOKIE) and service.auth.session(c.cookies.get(COOKIE), 100 * S).csrf
    assert c.post('/r/1/decide', data={'choice': 0, 'csrf_token': csrf}).status_code == 200
    assert published[0].reviewer_id == hostile('user')
    # the decided page: decision, reviewer, audit trail, and the cart's (hostile) refusal
    assert service.on_ack(req.request_id, hostile('user'), 2, hostile('refusal')) == 'rejected'
    for url in ('/', '/r/1'):
        m = assert_no_live_markup(c.get(url).text)
        assert hostile('refusal') in ''.join(m.text), url
    assert hostile('user') in ''.join(assert_no_live_markup(c.get('/r/1').text).text)
    assert_no_live_markup(c.get('/login').text)


def test_a_hostile_request_id_cannot_leave_the_evidence_folder():
    from store_review.evidence import evidence_folder_name
    names = {evidence_folder_name(rid) for rid in ('..', '../..', '/etc', '.', '', 'a/b', 'a_b')}
    assert len(names) == 7
    for name in names:
        assert '/' not in name and name not in ('.', '..') and not name.startswith('.')
