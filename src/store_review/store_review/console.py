"""The reviewer console: a FastAPI app served by uvicorn in a thread of the review node.

Server-rendered HTML, no build step. Every page but the login page needs a session cookie
(HttpOnly, SameSite=Strict, random token whose hash is stored with its user and expiry); HTML
pages redirect to ``/login`` without one, other endpoints answer 401. Every state-changing
request (decide, logout) must carry the session's CSRF token (form field ``csrf_token`` or
header ``X-CSRF-Token``), else 403. Logins are throttled per account and per client address and
bounded in flight (``login_guard.py``): refused ones answer 429 with Retry-After. Every value
written into a page is escaped. Reviewers see open requests; supervisors also escalated and
expired ones.

Pages: ``/`` the queue by priority; ``/r/<seq>`` one request: reason, when it happened (the
store's local clock time and seconds after each shopper entered, never raw stamps), the plates'
weight trace (inline SVG), the camera frame strip from hand-in to settled per camera (faces
blurred before they were stored; the plate and each tracked shopper's box drawn over it, in the
shopper's colour), and one answer per candidate grouped by shopper in the same colours; keys
1..9 pick an answer, 0 = leave every cart unchanged. Money is shown in the catalog's currency
(:class:`PageInfo`), and the page says whether the store has cameras at all.
"""
from __future__ import annotations

import html
import math
import pathlib
import re
import socket
import threading
import time
from dataclasses import dataclass

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
import uvicorn

from store_cart.model import (ACTION_RETURN, ACTION_TAKE, REASON_NAMES, REASON_NO_SHOPPER,
                              REASON_SPOT_CHECK)
from store_review.auth import AuthError, Session
from store_review.evidence import NS_PER_S, start_ns_of, trace_svg
from store_review.login_guard import LoginRefused
from store_review.service import DecisionRefused, NO_CHANGE, ReviewService

COOKIE = 'wos_review_session'
_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#24324a;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#cde} main{padding:16px;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff} td,th{padding:6px 8px;
border-bottom:1px solid #ddd;text-align:left} .flag{color:#b00;font-weight:bold}
.cand{display:block;width:100%;text-align:left;padding:10px;margin:4px 0;font-size:15px;
cursor:pointer;background:#fff;border:1px solid #aab;border-radius:4px}
.cand:hover{background:#e8f0ff} kbd{background:#eee;border:1px solid #bbb;border-radius:3px;
padding:0 5px;margin-right:8px} .evid img{max-width:320px;margin:4px;border:1px solid #999}
.box{background:#fff;padding:12px;margin:10px 0;border-radius:4px} .err{color:#b00}
.refused{color:#b00;font-weight:bold} .waiting{color:#a60} .applied{color:#070}
.who{margin:10px 0 2px;padding:2px 8px;border-left:6px solid;font-weight:bold}
.cand small,.why{color:#555;font-size:13px} .strip{display:flex;gap:6px;flex-wrap:wrap;
margin:4px 0 10px} figure{margin:0;display:inline-block} .pic{position:relative} figure img{
display:block;width:240px;border:1px solid #999} figcaption{font-size:12px;color:#333}
.ov{position:absolute;box-sizing:border-box;border:3px solid;pointer-events:none}
.ov span{position:absolute;top:-2px;left:-2px;color:#fff;font:bold 11px sans-serif;
padding:0 3px;white-space:nowrap} .plate{border:2px dashed #ffd200}
.spot{background:#eef6ee;border-left:6px solid #4a4;padding:6px 10px}
"""
# one colour per shopper of a request: the answer buttons and the boxes in the camera frames
SHOPPER_COLORS = ('#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b',
                  '#e377c2')
ZERO_DECIMAL_CURRENCIES = {'JPY', 'KRW', 'VND', 'CLP', 'ISK', 'HUF'}


@dataclass(frozen=True)
class PageInfo:
    """What the pages say about the store: its currency and its cameras.

    ``cameras_known`` False (a console started without the store description) makes the page
    say only what the evidence shows, never that the store has or lacks cameras."""

    currency: str = ''
    camera_ids: tuple[str, ...] = ()
    cameras_known: bool = False

    @classmethod
    def from_store(cls, store, camera_ids=None) -> 'PageInfo':
        ids = tuple(c.id for c in store.cameras) if camera_ids is None else tuple(camera_ids)
        return cls(store.catalog.currency, ids, True)

    @classmethod
    def from_store_file(cls, path) -> 'PageInfo':
        from store_common.description import load_store, StoreConfigError
        try:
            return cls.from_store(load_store(path))
        except StoreConfigError as exc:
            raise ValueError(str(exc)) from None


def money(cents, currency: str = '') -> str:
    """An amount in cents as the currency's units, e.g. ``3.49 EUR`` (plain text)."""
    try:
        c = int(cents)
    except (TypeError, ValueError):
        return '?'
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f'{c} {currency}'
    sign = '-' if c < 0 else ''
    return f'{sign}{abs(c) // 100}.{abs(c) % 100:02d} {currency or "(currency unknown)"}'


def clock_time(stamp_ns, with_zone: bool = True) -> str:
    """A stamp as the store's local clock time, e.g. ``14:03:07.4 CET`` (plain text)."""
    try:
        t = int(stamp_ns) / NS_PER_S
        lt = time.localtime(t)
    except (TypeError, ValueError, OverflowError, OSError):
        return '?'
    tenths = int((t % 1) * 10)
    return time.strftime('%H:%M:%S', lt) + f'.{tenths}' + (
        f' {time.strftime("%Z", lt)}' if with_zone else '')


def shopper_colors(shopper_ids) -> dict[str, str]:
    """A colour per shopper, in the order given (the request's), the same on every page."""
    out: dict[str, str] = {}
    for sid in shopper_ids:
        if sid and sid not in out:
            out[sid] = SHOPPER_COLORS[len(out) % len(SHOPPER_COLORS)]
    return out


def _e(x) -> str:
    """Every value written into a page goes through here: it is text, never markup."""
    return html.escape(str(x), quote=True)


def _num(x, fmt: str, default: str = '?') -> str:
    """A number formatted for a page (escaped; ``default`` when it is not a finite number)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return _e(format(v, fmt)) if math.isfinite(v) else default


MAX_ID = 2 ** 63 - 1     # SQLite's largest integer: a larger id in a URL names nothing


def _id_ok(x: int) -> bool:
    return 0 < x <= MAX_ID


def _what(c: dict) -> str:
    if not c.get('sku') or int(c.get('quantity', 0)) < 1:
        return 'no product change'
    verb = {ACTION_TAKE: 'took', ACTION_RETURN: 'returned'}.get(int(c['action']), '?')
    who = c.get('shopper_id') or 'nobody'
    return f'{who} {verb} {c["quantity"]} x {c["sku"]}'     # plain text: callers escape it


def _finite_or_none(x) -> float | None:
    """A number for the JSON API (which cannot carry NaN), from a row of any age."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _handoff_text(h: dict | None) -> tuple[str, str]:
    """(css class, escaped text) saying whether the cart applied a decision."""
    if h is None:
        return 'waiting', 'not handed to the cart yet'
    if h['state'] == 'applied':
        return 'applied', 'applied by the cart'
    if h['state'] == 'rejected':
        return 'refused', f'REFUSED by the cart: {_e(h["reason"] or "no reason given")}'
    return 'waiting', (f'waiting for the cart (sent {int(h["sends"])} times, not acknowledged '
                       'yet)')


def client_address(peer: str, forwarded_for: str | None, trusted_proxies=()) -> str:
    """The address logins are throttled by: the TCP peer, unless the peer is one of
    ``trusted_proxies`` (a TLS-terminating reverse proxy on the same machine): then the
    right-most X-Forwarded-For entry that is not itself a trusted proxy (entries further left
    are whatever the client wrote). Without trusted proxies the header is ignored."""
    if peer not in trusted_proxies or not forwarded_for:
        return peer
    hops = [h.strip() for h in forwarded_for.split(',') if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop[:64]
    return peer


def _page(title: str, body: str, session: Session | None = None) -> str:
    nav = ''
    if session is not None:
        nav = (f'<a href="/">Queue</a><span>{_e(session.user)} ({_e(session.role)})</span>'
               f'<form method="post" action="/logout" style="margin:0">'
               f'<input type="hidden" name="csrf_token" value="{_e(session.csrf)}">'
               f'<button type="submit">Log out</button></form>')
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<style>{_CSS}</style></head><body><header><b>Walk-out review</b>{nav}</header>'
            f'<main>{body}</main></body></html>')


_EPOCH_SECONDS = re.compile(r'\b(1\d{9}(?:\.\d+)?) s\b')


def readable_detail(detail: str) -> str:
    """A request's detail text with epoch stamps ("at 1796406007.689 s") as clock times."""
    return _EPOCH_SECONDS.sub(lambda m: clock_time(float(m.group(1)) * NS_PER_S),
                              str(detail))


def _pct(v: float, whole: float) -> str:
    return f'{100.0 * v / whole:.2f}%' if whole > 0 else '0%'


def _figure(item: dict, start_ns: int, settled_ns: int, colors: dict[str, str]) -> str:
    """One evidence frame with its overlays: the plate box and each tracked shopper's box
    (percent positions over the image, so they scale with it)."""
    meta = item['payload']
    w, h = float(meta.get('width') or 0), float(meta.get('height') or 0)
    over = ''

    def box_div(box, cls: str, color: str = '', label: str = '', attrs: str = '') -> str:
        try:
            x, y, bw, bh = (float(v) for v in box)
        except (TypeError, ValueError):
            return ''
        style = (f'left:{_pct(x, w)};top:{_pct(y, h)};width:{_pct(bw, w)};'
                 f'height:{_pct(bh, h)}' + (f';border-color:{color}' if color else ''))
        tag = (f'<span style="background:{color}">{_e(label)}</span>' if label else '')
        return f'<div class="ov {cls}" style="{style}"{attrs}>{tag}</div>'

    if meta.get('plate_box_in_crop'):
        over += box_div(meta['plate_box_in_crop'], 'plate')
    for b in meta.get('shoppers') or []:
        sid = str(b.get('shopper_id', ''))
        color = colors.get(sid, '#777777')
        over += box_div(b.get('box'), 'track', color, sid, f' data-shopper="{_e(sid)}"')
    stamp = int(item['stamp_ns'])
    phase = ('before hand in' if stamp < start_ns else 'after settled' if stamp > settled_ns
             else 'hand in to settled')
    cap = f'{clock_time(stamp, False)} ({(stamp - start_ns) / NS_PER_S:+.1f} s, {phase})'
    return (f'<figure class="frame" data-stamp="{stamp}"><div class="pic"><img src="/evidence/'
            f'{int(item["evidence_id"])}.jpg" alt="{_e(item["name"])}">{over}</div>'
            f'<figcaption>{_e(cap)}</figcaption></figure>')


def create_app(service: ReviewService, secure_cookie: bool = False,
               trusted_proxies=(), page_info: PageInfo | None = None) -> FastAPI:
    app = FastAPI(title='walk-out store review console', docs_url=None, redoc_url=None,
                  openapi_url=None)
    auth = service.auth
    info = page_info or PageInfo()

    @app.middleware('http')
    async def security_headers(request: Request, call_next):
        resp = await call_next(request)
        resp.headers['X-Frame-Options'] = 'DENY'
        resp.headers['X-Content-Type-Options'] = 'nosniff'
        resp.headers['Referrer-Policy'] = 'no-referrer'
        resp.headers['Cache-Control'] = 'no-store'
        resp.headers['Content-Security-Policy'] = (
            "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
        return resp

    def session_of(request: Request) -> Session | None:
        try:
            return auth.session(request.cookies.get(COOKIE), service.clock())
        except AuthError:
            return None

    def unauthorized(request: Request, html_page: bool) -> Response:
        if html_page:
            return RedirectResponse('/login', status_code=303)
        return JSONResponse({'error': 'not logged in'}, status_code=401)

    def csrf_ok(session: Session, request: Request, form_token: str | None) -> bool:
        try:
            auth.check_csrf(session, form_token or request.headers.get('x-csrf-token'))
            return True
        except AuthError:
            return False

    # --- login / logout -----------------------------------------------------------------------
    def login_form(message: str = '') -> str:
        err = f'<p class="err">{_e(message)}</p>' if message else ''
        return _page('Log in', f'<div class="box"><h2>Reviewer log in</h2>{err}'
                     '<form method="post" action="/login"><p><label>User <input name="username" '
                     'id="username" autocomplete="username" required></label></p><p><label>'
                     'Password <input name="password" id="password" type="password" '
                     'autocomplete="current-password" required></label></p>'
                     '<button type="submit" id="login">Log in</button></form></div>')

    @app.get('/login', response_class=HTMLResponse)
    def login_page():
        return login_form()

    @app.post('/login')
    def login(request: Request, username: str = Form(''), password: str = Form('')):
        client = client_address(request.client.host if request.client else '',
                                request.headers.get('x-forwarded-for'), trusted_proxies)
        try:
            s = auth.login(username, password, service.clock(), client=client)
        except LoginRefused as exc:
            return HTMLResponse(login_form(str(exc)), status_code=429,
                                headers={'Retry-After': str(exc.retry_after_s)})
        except AuthError as exc:
            return HTMLResponse(login_form(str(exc)), status_code=401)
        resp = RedirectResponse('/', status_code=303)
        resp.set_cookie(COOKIE, s.token, max_age=int(auth.session_ttl_ns // NS_PER_S),
                        httponly=True, samesite='strict', secure=secure_cookie, path='/')
        return resp

    @app.post('/logout')
    def logout(request: Request, csrf_token: str = Form('')):
        s = session_of(request)
        if s is None:
            return unauthorized(request, False)
        if not csrf_ok(s, request, csrf_token):
            return JSONResponse({'error': 'invalid CSRF token'}, status_code=403)
        auth.logout(request.cookies.get(COOKIE), service.clock())
        resp = RedirectResponse('/login', status_code=303)
        resp.delete_cookie(COOKIE, path='/')
        return resp

    # --- queue --------------------------------------------------------------------------------
    def queue_rows(s: Session) -> list[dict]:
        now = service.clock()
        out = []
        for d in service.queue(s):
            r = d['request']
            out.append({'seq': d['seq'], 'request_id': d['request_id'], 'status': d['status'],
                        'flagged': d['flagged'], 'priority': round(d['priority'], 1),
                        'reason': REASON_NAMES.get(d['reason'], str(d['reason'])),
                        'shoppers': r.get('shopper_ids', []), 'plates': r.get('plate_ids', []),
                        'delta_grams': _finite_or_none(r.get('delta_grams')),
                        'shopper_exited': d['shopper_exited'],
                        'hand_in': clock_time(start_ns_of(d['event_id'], d['stamp_ns'])),
                        'age_s': round((now - d['received_ns']) / NS_PER_S, 1)})
        return out

    @app.get('/', response_class=HTMLResponse)
    def queue_page(request: Request):
        s = session_of(request)
        if s is None:
            return unauthorized(request, True)
        rows = queue_rows(s)
        trs = ''.join(
            f'<tr class="req" data-seq="{int(r["seq"])}"><td>{_num(r["priority"], ".1f")}</td>'
            f'<td><a href="/r/{int(r["seq"])}">{_e(r["request_id"])}</a></td>'
            f'<td>{_e(r["hand_in"])}</td>'
            f'<td>{_e(r["reason"])}</td><td>{_e(", ".join(map(str, r["plates"])))}</td>'
            f'<td>{_num(r["delta_grams"], "+.1f")} g</td>'
            f'<td>{_e(", ".join(map(str, r["shoppers"])))}'
            f'{" (left the store)" if r["shopper_exited"] else ""}</td>'
            f'<td>{_num(r["age_s"], ".0f")} s</td><td>{_e(r["status"])}'
            f'{" <span class=flag>FLAGGED</span>" if r["flagged"] else ""}</td></tr>'
            for r in rows)
        handoffs = ''
        if s.role == 'supervisor':
            hs = service.store.handoffs(('rejected', 'sent'))
            handoffs = ''.join(
                f'<tr class="handoff"><td><a href="/r/{int(h["seq"])}">{_e(h["request_id"])}'
                f'</a></td><td>{_e(h["reviewer"])}: {_e(_what(h["decision"]))}</td>'
                f'<td class="{_handoff_text(h)[0]}">{_handoff_text(h)[1]}</td></tr>'
                for h in hs)
            handoffs = (f'<h2>Decisions the cart has not applied ({len(hs)})</h2>'
                        f'<table id="handoffs"><tr><th>request</th><th>decision</th>'
                        f'<th>cart</th></tr>{handoffs}</table>') if hs else ''
        body = (f'<h2>Review queue ({len(rows)})</h2><table id="queue"><tr><th>priority</th>'
                '<th>request</th><th>hand in</th><th>reason</th><th>plates</th><th>change</th>'
                '<th>shoppers'
                f'</th><th>age</th><th>status</th></tr>{trs}</table>'
                + ('' if rows else '<p id="empty">Nothing to review.</p>') + handoffs
                + '<script>setTimeout(()=>location.reload(), 5000);'
                'document.addEventListener("keydown",e=>{if(e.key==="Enter"){'
                'const a=document.querySelector("#queue a");if(a)location=a.href;}});</script>')
        return _page('Review queue', body, s)

    @app.get('/api/queue')
    def queue_api(request: Request):
        s = session_of(request)
        if s is None:
            return unauthorized(request, False)
        out = {'user': s.user, 'role': s.role, 'requests': queue_rows(s)}
        if s.role == 'supervisor':
            out['handoffs'] = [{'seq': h['seq'], 'request_id': h['request_id'],
                                'reviewer': h['reviewer'], 'state': h['state'],
                                'reason': h['reason'], 'sends': h['sends']}
                               for h in service.store.handoffs(('rejected', 'sent'))]
        return out

    # --- one request --------------------------------------------------------------------------
    @app.get('/api/r/{seq}')
    def request_api(request: Request, seq: int):
        """One request as data, for a client other than the page (a handheld app, a bench's
        simulated reviewer): what the page shows as answers, each with the ``choice`` that
        ``POST /r/{seq}/decide`` takes, and the session's CSRF token for that post (sent in the
        form field or the ``X-CSRF-Token`` header; a JSON read is same-origin only)."""
        s = session_of(request)
        if s is None:
            return unauthorized(request, False)
        d = service.request_for(s, seq) if _id_ok(seq) else None
        if d is None:
            return JSONResponse({'error': 'no such request in your queue'}, status_code=404)
        r = d['request']
        choices = [{'choice': i, 'shopper_id': str(c.get('shopper_id', '')),
                    'sku': str(c.get('sku', '')), 'action': int(c.get('action', 0)),
                    'quantity': int(c.get('quantity', 0)),
                    'confidence': _finite_or_none(c.get('confidence'))}
                   for i, c in enumerate(r.get('candidates', []))]
        choices.append({'choice': NO_CHANGE, 'shopper_id': '', 'sku': '', 'action': 0,
                        'quantity': 0, 'confidence': None, 'cannot_tell': True})
        return {'seq': d['seq'], 'request_id': d['request_id'], 'event_id': d['event_id'],
                'stamp_ns': int(d['stamp_ns']),
                'start_ns': int(start_ns_of(d['event_id'], d['stamp_ns'])),
                'status': d['status'], 'reason': REASON_NAMES.get(d['reason'], str(d['reason'])),
                'spot_check': d['reason'] == REASON_SPOT_CHECK,
                'plate_ids': [str(p) for p in r.get('plate_ids', [])],
                'shopper_ids': [str(x) for x in r.get('shopper_ids', [])],
                'delta_grams': _finite_or_none(r.get('delta_grams')),
                'choices': choices, 'decision': d['decision'], 'csrf_token': s.csrf}

    @app.get('/r/{seq}', response_class=HTMLResponse)
    def request_page(request: Request, seq: int):
        s = session_of(request)
        if s is None:
            return unauthorized(request, True)
        d = service.request_for(s, seq) if _id_ok(seq) else None
        if d is None:
            return HTMLResponse(_page('Not found', '<p>No such request in your queue.</p>', s),
                                status_code=404)
        r = d['request']
        traces = service.store.evidence(d['request_id'], 'weight_trace')
        images = service.store.evidence(d['request_id'], 'image')
        start_ns = start_ns_of(d['event_id'], d['stamp_ns'])
        svg = trace_svg(traces, marks_ns=[(start_ns, 'hand in'), (d['stamp_ns'], 'settled')])
        cands = r.get('candidates', [])
        shoppers = [str(x) for x in r.get('shopper_ids', [])]
        shoppers += [c['shopper_id'] for c in cands
                     if c.get('shopper_id') and c['shopper_id'] not in shoppers]
        colors = shopper_colors(shoppers)
        entered = service.store.entered_ns(shoppers)
        decided = d['status'] == 'decided'
        spot = d['reason'] == REASON_SPOT_CHECK
        csrf = _e(s.csrf)
        keys = iter('123456789')

        def button(idx: int, label: str, why: str, color: str = '', key: str | None = None
                   ) -> str:
            key = next(keys, '') if key is None else key
            style = f' style="border-left:6px solid {color}"' if color else ''
            kbd = f'<kbd>{key}</kbd>' if key else ''
            text = f'{kbd}{_e(label)}<br><small>{_e(why)}</small>'
            if decided:
                return f'<div class="cand"{style}>{text}</div>'
            return (f'<form method="post" action="/r/{seq}/decide" class="decide" '
                    f'data-key="{key}"><input type="hidden" name="csrf_token" value="{csrf}">'
                    f'<input type="hidden" name="choice" value="{idx}"><button type="submit" '
                    f'class="cand" id="choice-{idx}" data-shopper="{_e(label.split(" ")[0])}"'
                    f'{style}>{text}</button></form>')

        def since_entry(sid: str) -> str:
            if sid not in entered:
                return 'entry time unknown'
            dt = (start_ns - entered[sid]) / NS_PER_S
            if dt < 0:
                return (f'hand in {-dt:.1f} s before entering at '
                        f'{clock_time(entered[sid], False)}')
            return f'{dt:.1f} s after entering at {clock_time(entered[sid], False)}'

        # answers: per shopper (their colour), then the two "no change" answers
        answers = ''
        for sid in shoppers:
            mine = [(i, c) for i, c in enumerate(cands) if c.get('shopper_id') == sid
                    and c.get('sku') and int(c.get('quantity', 0)) > 0]
            if not mine:
                continue
            answers += (f'<div class="who" data-shopper="{_e(sid)}" style="border-color:'
                        f'{colors[sid]}">{_e(sid)} &mdash; {_e(since_entry(sid))}</div>')
            for i, c in mine:
                mark = ('the machine\'s decision, in this cart already: confirm it'
                        if spot and i == 0 else 'this shopper\'s cart gets the change')
                answers += button(i, _what(c), f'p={_num(c.get("confidence"), ".2f")}: {mark}',
                                  colors[sid])
        for i, c in enumerate(cands):
            if not (c.get('sku') and int(c.get('quantity', 0)) > 0):
                answers += button(i, 'Nothing was taken or returned',
                                  f'p={_num(c.get("confidence"), ".2f")}: the weight change was '
                                  'no product (a lean, a touch, an item put down and picked up '
                                  'again). No cart changes; the system learns it was no product.')
        answers += button(NO_CHANGE, 'Leave every cart unchanged (cannot tell)',
                          'None of the answers above fits, or the evidence does not show it. '
                          'No cart changes; recorded as undecidable for supervisors, the '
                          'system learns nothing from it.', key='0')
        if len(shoppers) == 0:
            answers = ('<p class="why">Nobody was inside the store around this event, so no '
                       'shopper can be offered.</p>') + answers

        # cameras: a strip per camera from hand in to settled, boxes drawn over the frames
        by_cam: dict[str, list[dict]] = {}
        for i in images:
            cam = str(i['payload'].get('camera_id') or i['name'].split('@')[0])
            by_cam.setdefault(cam, []).append(i)
        strips = ''
        for cam, items in sorted(by_cam.items()):
            figs = ''
            for i in sorted(items, key=lambda x: x['stamp_ns']):
                figs += _figure(i, start_ns, d['stamp_ns'], colors)
            strips += (f'<div class="camstrip" data-camera="{_e(cam)}"><b>{_e(cam)}</b>'
                       f'<div class="strip">{figs}</div></div>')
        if strips:
            cams_html = ('<p class="why">Frames from hand in to settled; faces blurred; the '
                         'plate dashed yellow; each tracked shopper boxed in the colour of '
                         f'their answers.</p>{strips}')
        elif info.cameras_known and info.camera_ids:
            cams_html = (f'<p id="no-frames">This store has cameras '
                         f'({_e(", ".join(info.camera_ids))}), but no frame of this event was '
                         'kept: the cameras were not running (a weight-only run), or none saw '
                         'these plates in time. Decide from the weight trace.</p>')
        elif info.cameras_known:
            cams_html = ('<p id="no-frames">This store has no cameras (weight only): decide '
                         'from the weight trace and the shoppers inside.</p>')
        else:
            cams_html = '<p id="no-frames">No camera frames were stored for this event.</p>'

        status = _e(d['status']) + (' <span class="flag">FLAGGED</span>' if d['flagged'] else '')
        dec = ''
        if decided and d['decision']:
            dd = d['decision']
            cls, said = _handoff_text(d.get('handoff'))
            dec = (f'<p id="decision">Decided by {_e(dd["reviewer"])}: '
                   f'{_e(_what(dd["decision"]))}</p><p id="handoff" class="{cls}">'
                   f'Cart: {said}</p>')
        receipts = service.store.receipts(shoppers)
        rec = ''.join(f'<li>{_e(x["receipt_id"])} rev {_e(x["revision"])}: '
                      f'{_e(money(x["total_cents"], x.get("currency") or info.currency))}, '
                      f'{_e(x["pending_reviews"])} pending'
                      f'{(" - " + _e(x["correction_note"])) if x["correction_note"] else ""}'
                      '</li>' for x in receipts)
        audit = ''.join(f'<li>{_e(a["actor"])}: {_e(a["action"])} '
                        f'{_e(readable_detail(a["detail"]))}</li>'
                        for a in service.store.audit_log(d['request_id']))
        inside = ', '.join(f'{sid} ({since_entry(sid)})' for sid in shoppers) or 'nobody'
        hold_s = (d['stamp_ns'] - start_ns) / NS_PER_S
        who_label = ('Nobody inside at hand in; inside within a few seconds'
                     if d['reason'] == REASON_NO_SHOPPER else 'Shoppers inside')
        title = (f'{"Spot check" if spot else "Review"}: plate '
                 f'{", ".join(map(str, r.get("plate_ids", [])))} at {clock_time(start_ns)}')
        spot_html = ''
        if spot and cands:
            spot_html = (f'<p id="spot-check" class="spot">The machine decided this event alone: '
                         f'<b>{_e(_what(cands[0]))}</b>, in that cart already. One in '
                         f'{max(1, round(1.0 / float(r.get("label_chance") or 1.0)))} such '
                         'decisions is checked by a person so that the system learns how often '
                         'it is right when it does not ask. Confirm it, or pick what happened: '
                         'another answer corrects the carts.</p>')
        body = (f'<h2>{_e(title)}</h2><p class="why">request {_e(d["request_id"])}</p>'
                f'<div class="box"><p>Reason: <b>'
                f'{_e(REASON_NAMES.get(d["reason"], d["reason"]))}</b> &mdash; '
                f'{_e(readable_detail(r.get("detail", "")))}</p>{spot_html}'
                f'<p id="when">Hand in at <b>{_e(clock_time(start_ns))}</b>, settled '
                f'{hold_s:.1f} s later; plates {_e(", ".join(map(str, r.get("plate_ids", []))))}'
                f', change {_num(r.get("delta_grams"), "+.1f")} g</p>'
                f'<p id="inside">{who_label}: {_e(inside)}; status {status}</p>{dec}</div>'
                f'<div class="box"><h3>What happened? (keys 1-9, 0 = leave carts unchanged)'
                f'</h3>{answers}</div>'
                f'<div class="box evid"><h3>Cameras</h3>{cams_html}</div>'
                f'<div class="box"><h3>Weight trace</h3>{svg}</div>'
                f'<div class="box"><h3>Receipts</h3><ul>{rec}</ul>'
                f'<h3>Audit</h3><ul>{audit}</ul></div>'
                '<script>document.addEventListener("keydown",e=>{if(e.ctrlKey||e.metaKey||'
                'e.altKey)return;const f=document.querySelector('
                '`form.decide[data-key="${e.key}"]`);if(f){e.preventDefault();f.submit();}});'
                '</script>')
        return _page(d['request_id'], body, s)

    @app.post('/r/{seq}/decide')
    def decide(request: Request, seq: int, choice: int = Form(...), csrf_token: str = Form('')):
        s = session_of(request)
        if s is None:
            return unauthorized(request, False)
        if not csrf_ok(s, request, csrf_token):
            return JSONResponse({'error': 'invalid CSRF token'}, status_code=403)
        if not _id_ok(seq):
            return JSONResponse({'error': 'no such request'}, status_code=404)
        try:
            service.decide(s, seq, int(choice))
        except DecisionRefused as exc:
            code = 409 if 'already decided' in str(exc) else 403
            if 'no such' in str(exc):
                code = 404
            return JSONResponse({'error': str(exc)}, status_code=code)
        if 'text/html' in request.headers.get('accept', ''):
            nxt = service.queue(s)
            return RedirectResponse(f'/r/{nxt[0]["seq"]}' if nxt else '/', status_code=303)
        return {'decided': seq}

    @app.get('/evidence/{evidence_id}.jpg')
    def evidence_image(request: Request, evidence_id: int):
        s = session_of(request)
        if s is None:
            return unauthorized(request, False)
        item = service.store.evidence_item(evidence_id) if _id_ok(evidence_id) else None
        if item is None or item['kind'] != 'image':
            return JSONResponse({'error': 'not found'}, status_code=404)
        d = service.store.request(item['request_id'])
        if d is None or service.request_for(s, d['seq']) is None:
            return JSONResponse({'error': 'not found'}, status_code=404)
        try:
            data = pathlib.Path(item['path']).read_bytes()
        except OSError:
            return JSONResponse({'error': 'image file missing'}, status_code=410)
        return Response(data, media_type='image/jpeg')

    @app.get('/healthz')
    async def healthz():        # on the event loop: answers while worker threads are busy
        return {'ok': True}

    return app


class PortTaken(OSError):
    """The console's port cannot be bound; ``str()`` names the address and port."""


class ConsoleServer:
    """uvicorn serving ``app`` in a daemon thread; binds before starting so errors are early.

    ``port`` 0 picks a free port (``url`` says which). A port that is taken is an error
    (:class:`PortTaken`, naming it), never a silent move to another port: a reviewer would be
    sent to the wrong URL.
    """

    def __init__(self, app, host: str = '127.0.0.1', port: int = 8080):
        self.sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise PortTaken(exc.errno, f'review console: cannot listen on {host} port {port}: '
                            f'{exc.strerror or exc} (is another console or run using it? pick '
                            f'another port, or 0 for a free one)') from None
        self.sock.listen(64)
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level='warning', access_log=False, lifespan='off')
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name='review-console', daemon=True)

    @property
    def url(self) -> str:
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'http://{host}:{self.port}'

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self, wait_s: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + wait_s
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, wait_s: float = 5.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(wait_s)
        self.sock.close()
