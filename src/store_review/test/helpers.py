"""Synthetic review requests for the store_review tests."""
from __future__ import annotations

from store_cart.model import CandidateData, ReviewRequestData

S = 1_000_000_000


def request(event: str = 'g1.s1.p1@1000000000', shoppers=('acct-a', 'acct-b'), reason: int = 1,
            stamp_s: float = 2.0, delta: float = -352.0) -> ReviewRequestData:
    cands = tuple(CandidateData(s, 'COLA-330', 1, 1, 0.45) for s in shoppers)
    cands += (CandidateData('', '', 0, 0, 0.1),)
    return ReviewRequestData(
        request_id=f'review/{event}', event_id=event, reason=reason, detail='test',
        gondola_id='g1', plate_ids=(event.split('@')[0],), delta_grams=delta,
        shopper_ids=tuple(shoppers), candidates=cands, stamp_ns=int(stamp_s * S))
