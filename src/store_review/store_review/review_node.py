"""The review node: the persisted review queue, its evidence, and the reviewer web console.

Subscribes ``review_requests`` and ``shelf_events`` (EVENT_QOS), ``carts`` and ``receipts``
(STATE_QOS: who has left, what their receipts say), ``<controller>/plate_weights`` of every
controller (weight traces), ``cameras/<id>/<camera_image_topic>`` of every camera in the store
description's ``cameras:`` section, if any (the drivers' JPEG evidence frames, a few a second;
``image_raw`` for bags recorded without them), and ``review_decision_acks`` (EVENT_QOS: the cart
applied or refused a decision), and with calibrated cameras ``shopper_tracks`` (the tracker's
shopper positions: each candidate's box drawn in the camera evidence). Publishes
``review_decisions`` (EVENT_QOS; the cart node applies them and amends issued receipts); every
decision the cart has not acknowledged is published again on start and every ``resend_period_s``,
so none is lost while the cart or this node is down. Serves the console (``console.py``) with
uvicorn in a thread. All logic is in ``service.py``, ``store.py``, ``evidence.py``, ``console.py``.
"""
from __future__ import annotations

import os
import pathlib

from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image
from store_cart.model import CandidateData, ReviewRequestData
from store_common.description import load_store, StoreConfigError
from store_common.evidence_frames import compressed_problem
from store_common.stamps import cdr_header_stamp_ns
from store_common.ros import (declare, EVENT_QOS, ns_stamp, RELIABLE_STREAM_QOS, SENSOR_QOS,
                              STATE_QOS, stamp_ns, run_node)
from store_interfaces.msg import (CartState, PlateWeights, Receipt, ReviewDecision,
                                  ReviewDecisionAck, ReviewRequest, ShelfEvent, ShopperTracks)
from store_shelf import convert
import yaml

from store_review.console import ConsoleServer, create_app, PageInfo
from store_review.evidence import (camera_views, cameras_from_description, FrameBuffer,
                                   image_from_msg_fields, ImageCollector, TraceBuffer,
                                   TraceCollector, TrackBuffer)
from store_review.service import ack_problem, request_problem, ReviewService
from store_review.store import QueueParams, ReviewDbError, ReviewStore

DEFAULT_DB_PATH = '~/.local/state/walkout/review.sqlite'


def review_request_from_msg(msg: ReviewRequest) -> ReviewRequestData:
    return ReviewRequestData(
        request_id=msg.request_id, event_id=msg.event_id, reason=int(msg.reason),
        detail=msg.detail, gondola_id=msg.gondola_id, plate_ids=tuple(msg.plate_ids),
        delta_grams=float(msg.delta_grams), shopper_ids=tuple(msg.shopper_ids),
        candidates=tuple(CandidateData(c.shopper_id, c.sku, int(c.action), int(c.quantity),
                                       float(c.confidence)) for c in msg.candidates),
        stamp_ns=stamp_ns(msg.header.stamp), label_chance=float(msg.label_chance))


class ReviewNode(Node):

    def __init__(self):
        super().__init__('review')
        store_file = declare(self, 'store_file', '', 'Store description YAML. Required.',
                             read_only=True)
        db_path = os.path.expanduser(declare(
            self, 'db_path', DEFAULT_DB_PATH, 'SQLite review database (requests, evidence, '
            'decisions, accounts, audit log).', read_only=True))
        evidence_dir = declare(self, 'evidence_dir', '', 'Folder for evidence images; "" = '
                               '<db folder>/review_evidence.', read_only=True)
        host = declare(self, 'host', '127.0.0.1', 'Address the console listens on.',
                       read_only=True)
        port = declare(self, 'port', 8080, 'Console TCP port; 0 picks a free one (logged and '
                       'written to url_file). A port that is taken is an error naming it.', lo=0,
                       hi=65535, read_only=True)
        url_file = declare(self, 'url_file', '', 'Write the console URL here once it listens.',
                           read_only=True)
        cookie_secure = declare(self, 'cookie_secure', False, 'Mark the session cookie Secure '
                                '(set when served behind HTTPS).', read_only=True)
        trusted_proxies = declare(self, 'trusted_proxies', [], 'Addresses of reverse proxies '
                                  'in front of the console (e.g. 127.0.0.1 behind nginx): for '
                                  'requests from them, logins are throttled by the '
                                  'X-Forwarded-For client address. Empty: the header is '
                                  'ignored.', read_only=True, array_type='string')
        session_ttl_s = declare(self, 'session_ttl_s', 8 * 3600.0, 'Login session lifetime '
                                '[s].', lo=60.0, hi=7 * 86400.0, read_only=True)
        qp = QueueParams(
            escalate_after_s=declare(self, 'escalate_after_s', 300.0, 'An open request '
                                     'unanswered this long is escalated: only supervisors see '
                                     'and decide it [s].', lo=1.0, hi=86400.0, read_only=True),
            expire_after_s=declare(self, 'expire_after_s', 1800.0, 'Unanswered this long, a '
                                   'request expires: flagged, supervisor queue only [s].',
                                   lo=1.0, hi=7 * 86400.0, read_only=True),
            exited_bonus=declare(self, 'exited_priority_bonus', 100.0, 'Priority added once a '
                                 'shopper of the request left the store.', lo=0.0, hi=1e6,
                                 read_only=True))
        trace_pad_s = declare(self, 'trace_pad_s', 2.0, 'Weight trace from event start minus '
                              'this to settled plus this [s].', lo=0.0, hi=30.0, read_only=True)
        sweep_period_s = declare(self, 'sweep_period_s', 2.0, 'How often escalation and expiry '
                                 'are checked [s].', lo=0.1, hi=600.0, read_only=True)
        resend_period_s = declare(self, 'resend_period_s', 2.0, 'Decisions the cart has not '
                                  'acknowledged are published again this often (and on start) '
                                  '[s].', lo=0.1, hi=3600.0, read_only=True)
        image_topic = declare(self, 'camera_image_topic', 'image_evidence/compressed', 'Each '
                              'camera\'s evidence frames, under cameras/<id>/: a name ending in '
                              '/compressed is sensor_msgs/CompressedImage (JPEG or PNG; the '
                              'camera driver publishes image_evidence/compressed at its '
                              'evidence_rate_hz), any other sensor_msgs/Image (image_raw: every '
                              'frame, for bags recorded without evidence frames).',
                              read_only=True)
        if not store_file:
            raise ValueError('parameter store_file is required (the store description YAML)')
        if not image_topic or image_topic.startswith('/') or ' ' in image_topic:
            raise ValueError(f'camera_image_topic {image_topic!r}: give a topic name relative '
                             'to cameras/<id>/, e.g. image_evidence/compressed or image_raw')
        compressed = image_topic.endswith('/compressed')
        store = load_store(store_file)
        raw = yaml.safe_load(pathlib.Path(store_file).read_text()) or {}
        # calibrated cameras: plates and pixel boxes from the geometry; else what the file says
        cameras = (camera_views(store) if store.cameras
                   else cameras_from_description(raw.get('store', raw)))
        evidence_dir = evidence_dir or str(pathlib.Path(db_path).parent / 'review_evidence')

        self._store = ReviewStore(db_path, qp)
        self._pub = self.create_publisher(ReviewDecision, 'review_decisions', EVENT_QOS)
        self._service = ReviewService(self._store, self._publish_decision,
                                      lambda: self.get_clock().now().nanoseconds, session_ttl_s)
        self._traces = TraceBuffer(keep_s=60.0)
        self._trace_jobs = TraceCollector(self._traces, pad_s=trace_pad_s)
        # compressed: the driver already picks one frame per 1/rate slot (gaps of 1-2 source
        # frames), so the buffer only guards against a flood
        self._frames = FrameBuffer(max_fps=8.0) if compressed else FrameBuffer()
        # the tracker's shopper positions: each candidate's box in the camera evidence
        self._tracks = TrackBuffer() if store.cameras else None
        self._images = ImageCollector(self._frames, cameras, evidence_dir, tracks=self._tracks,
                                      models={c.id: c.model for c in store.cameras})

        self.create_subscription(ReviewRequest, 'review_requests', self._on_request, EVENT_QOS)
        self.create_subscription(ShelfEvent, 'shelf_events', self._on_shelf, EVENT_QOS)
        self.create_subscription(CartState, 'carts', self._on_cart, STATE_QOS)
        self.create_subscription(Receipt, 'receipts', self._on_receipt, STATE_QOS)
        for c in store.controllers:
            self.create_subscription(PlateWeights, f'{c.id}/plate_weights', self._on_weights,
                                     RELIABLE_STREAM_QOS)
        for cam in cameras:
            topic = f'cameras/{cam.camera_id}/{image_topic}'
            if compressed:
                self.create_subscription(
                    CompressedImage, topic,
                    lambda msg, c=cam.camera_id: self._on_compressed(c, msg), SENSOR_QOS)
            else:
                # serialized: of 10 frames/s the buffer keeps 4, and only those are deserialized
                self.create_subscription(Image, topic,
                                         lambda data, c=cam.camera_id: self._on_image(c, data),
                                         SENSOR_QOS, raw=True)
        if self._tracks is not None:
            self.create_subscription(ShopperTracks, 'shopper_tracks', self._on_tracks,
                                     EVENT_QOS)
        self.create_timer(0.5, self._on_evidence_tick)
        self.create_timer(sweep_period_s, self._on_sweep)
        self.create_subscription(ReviewDecisionAck, 'review_decision_acks', self._on_ack,
                                 EVENT_QOS)
        self._resend_ns = int(resend_period_s * 1e9)
        self.create_timer(resend_period_s, self._on_resend)
        again = self._service.resend()          # decisions made before a restart
        if again:
            self.get_logger().info(f'{len(again)} decisions not yet acknowledged by the cart '
                                   'published again')

        self._server = ConsoleServer(create_app(self._service, secure_cookie=cookie_secure,
                                                trusted_proxies=tuple(trusted_proxies),
                                                page_info=PageInfo.from_store(store)),
                                     host, port)
        self._server.start()
        if url_file:
            pathlib.Path(url_file).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(url_file).write_text(self._server.url + '\n')
        users = len(self._store.users())
        self.get_logger().info(
            f'review console on {self._server.url}; database {db_path}; {users} accounts'
            f'{" (add one with: review_users --db " + db_path + " add NAME)" if not users else ""}'
            f'; {len(cameras)} cameras; escalate after {qp.escalate_after_s:g} s, expire after '
            f'{qp.expire_after_s:g} s')

    def close(self) -> None:
        self._server.stop()
        self._store.close()

    # --- inputs -------------------------------------------------------------------------------
    def _on_request(self, msg: ReviewRequest) -> None:
        req = review_request_from_msg(msg)
        problem = request_problem(req)
        if problem is not None:
            self.get_logger().warning(f'review_requests: ignored request '
                                      f'{req.request_id[:200]!r}: {problem}')
            return
        if self._service.on_request(req):
            self._trace_jobs.request(req.request_id, req.event_id, req.plate_ids, req.stamp_ns)
            self._images.request(req.request_id, req.event_id, req.plate_ids, req.stamp_ns,
                                 req.shopper_ids)
            self.get_logger().info(f'queued {req.request_id}: {req.detail}')
        elif not self._store.has_trace(req.request_id):
            # redelivered after a restart: the trace may still be in the buffer
            self._trace_jobs.request(req.request_id, req.event_id, req.plate_ids, req.stamp_ns)

    def _on_shelf(self, msg: ShelfEvent) -> None:
        self._store.add_shelf_event(convert.shelf_event_from_msg(msg).to_dict())

    def _on_cart(self, msg: CartState) -> None:
        self._store.on_cart(msg.shopper_id, msg.session_id, msg.state == CartState.STATE_EXITED,
                            stamp_ns(msg.header.stamp))

    def _on_receipt(self, msg: Receipt) -> None:
        d = {'receipt_id': msg.receipt_id, 'revision': int(msg.revision),
             'shopper_id': msg.shopper_id, 'total_cents': int(msg.total_cents),
             'pending_reviews': int(msg.pending_reviews), 'correction_note': msg.correction_note,
             'currency': msg.currency,
             'exited_ns': stamp_ns(msg.exited_stamp),
             'lines': [{'sku': ln.sku, 'quantity': int(ln.quantity), 'status': int(ln.status)}
                       for ln in msg.lines]}
        self._store.add_receipt(d)

    def _on_weights(self, msg: PlateWeights) -> None:
        for w in msg.weights:
            self._traces.add(w.plate_id, stamp_ns(w.stamp), w.weight_grams, w.valid)

    def _on_tracks(self, msg: ShopperTracks) -> None:
        self._tracks.add(stamp_ns(msg.header.stamp),
                         {t.shopper_id: (t.position.x, t.position.y) for t in msg.tracks
                          if t.shopper_id})

    def _on_image(self, camera_id: str, data: bytes) -> None:
        stamp = cdr_header_stamp_ns(data)
        if stamp is not None and not self._frames.wants(camera_id, stamp):
            return
        try:
            msg = deserialize_message(data, Image)
        except Exception as exc:  # noqa: BLE001 - a malformed sample must not stop the node
            self.get_logger().warning(f'camera {camera_id}: undecodable image ({exc!r}); '
                                      'skipped', throttle_duration_sec=10.0)
            return
        if not self._frames.wants(camera_id, stamp_ns(msg.header.stamp)):
            return
        img = image_from_msg_fields(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        if img is not None:
            self._frames.add(camera_id, stamp_ns(msg.header.stamp), img)

    def _on_compressed(self, camera_id: str, msg: CompressedImage) -> None:
        stamp = stamp_ns(msg.header.stamp)
        if not self._frames.wants(camera_id, stamp):
            return
        data = bytes(msg.data)
        problem = compressed_problem(msg.format, data)
        if problem:
            self.get_logger().warning(f'camera {camera_id}: evidence frame refused: {problem}',
                                      throttle_duration_sec=10.0)
            return
        self._frames.add(camera_id, stamp, data)     # decoded only if a request needs it

    # --- timers -------------------------------------------------------------------------------
    def _on_evidence_tick(self) -> None:
        traces = self._trace_jobs.ready() + self._trace_jobs.expire()
        for t in traces:
            self._store.add_evidence(t.request_id, 'weight_trace', t.plate_id, t.t0_ns,
                                     t.payload())
        bad = self._frames.undecodable
        for rid, name, stamp, path, meta in self._images.ready(self._traces.newest_ns):
            self._store.add_evidence(rid, 'image', name, stamp, meta, path)
        if self._frames.undecodable > bad:
            self.get_logger().warning(f'{self._frames.undecodable - bad} evidence frames did not '
                                      'decode and were left out of their requests')

    def _on_sweep(self) -> None:
        for rid, status in self._service.sweep():
            self.get_logger().warning(f'{rid} {status}: only supervisors can decide it now')

    def _on_resend(self) -> None:
        # half a period: a decision published just before this tick waits for the next one
        again = self._service.resend(min_age_ns=self._resend_ns // 2)
        if again:
            self.get_logger().debug(f'published again, not yet acknowledged: {again[:5]}')

    def _on_ack(self, msg: ReviewDecisionAck) -> None:
        problem = ack_problem(msg.request_id, int(msg.status))
        if problem is not None:
            self.get_logger().warning(f'review_decision_acks: ignored ack for '
                                      f'{msg.request_id[:200]!r}: {problem}')
            return
        outcome = self._service.on_ack(msg.request_id, msg.reviewer_id, int(msg.status),
                                       msg.reason)
        what = f'{msg.request_id[:200]!r} (reviewer {msg.reviewer_id[:64]!r})'
        if outcome == 'applied':
            self.get_logger().info(f'cart applied the decision on {what}')
        elif outcome == 'rejected':
            self.get_logger().warning(f'cart refused the decision on {what}: '
                                      f'{msg.reason[:300]}')
        elif outcome == 'unknown':
            self.get_logger().warning(f'review_decision_acks: ignored ack for {what}: no such '
                                      'request in the review database')
        elif outcome in ('undecided', 'other_reviewer', 'conflict'):
            self.get_logger().warning(f'review_decision_acks: ack for {what} does not match '
                                      f'the decision made here ({outcome}); audited')

    # --- output -------------------------------------------------------------------------------
    def _publish_decision(self, d) -> None:
        msg = ReviewDecision()
        msg.header.stamp = ns_stamp(d.stamp_ns)
        msg.request_id = d.request_id
        msg.reviewer_id = d.reviewer_id
        msg.shopper_id = d.shopper_id
        msg.sku = d.sku
        msg.action = int(d.action)
        msg.quantity = int(d.quantity)
        self._pub.publish(msg)
        self.get_logger().info(f'decision on {d.request_id} by {d.reviewer_id}: '
                               f'{d.shopper_id or "nobody"} {d.action} {d.quantity} {d.sku}')


def main(args=None):
    return run_node('review', ReviewNode,
                    (ReviewDbError, StoreConfigError, ValueError, OSError), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
