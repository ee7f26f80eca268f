"""Gate QR-reader driver node: scanned shopper codes in, gate events out.

Logic lives in :mod:`store_drivers.gate` and :mod:`store_drivers.serial_link`; this module wires
parameters, the ``gate_events`` topic (EVENT_QOS), the gate's watermark on ``gate_watermarks``
(``store_common.ros_watermarks``: every scan stamped up to it is published), logging and
``/diagnostics``.
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Header
from store_common import diagnostics
from store_common.description import load_store, StoreConfigError
from store_common.ros import declare, EVENT_QOS, ns_stamp, run_node
from store_common.ros_watermarks import WatermarkPublisher
from store_interfaces.msg import GateEvent

from store_drivers.gate import GateDecoder
from store_drivers.serial_link import LinkEvent, SerialLink

KIND = {'entrance': GateEvent.KIND_ENTER, 'exit': GateEvent.KIND_EXIT}


class StartupError(RuntimeError):
    """The node cannot start (bad store file, unknown gate): logged, exit code 1."""


class GateDriver(Node):

    def __init__(self):
        super().__init__('gate_driver')
        store_file = declare(self, 'store_file', '',
                             'Store description YAML (config/stores/<store>.yaml).')
        gate_id = declare(self, 'gate_id', '', 'Gate id from the store description.')
        port = declare(self, 'port', '',
                       'Serial port of the QR reader; "" uses the store description.')
        baud = declare(self, 'baud', 0, 'Baud rate; 0 uses the store description.',
                       lo=0, hi=4_000_000)
        dedupe_s = declare(self, 'dedupe_s', 2.0,
                           'A repeat of the same code within this long of its previous read is '
                           'a double read and suppressed [s].', lo=0.0, hi=60.0)
        stale_timeout_s = declare(self, 'stale_timeout_s', 0.0,
                                  'Report the reader as stale after this long without a byte '
                                  '(logged and on diagnostics, never a reconnect: a QR reader is '
                                  'silent for long periods) [s]; 0 disables.', lo=0.0,
                                  hi=86400.0)
        poll_period_s = declare(self, 'poll_period_s', 0.1, 'Period of the serial poll [s] '
                                '(a scan is read, and stamped, at most this long after it '
                                'arrives: the tracker binds within bind_window_s).',
                                lo=0.001, hi=1.0)
        diagnostics_period_s = declare(self, 'diagnostics_period_s', 1.0,
                                       'Period of /diagnostics [s].', lo=0.1, hi=60.0)
        watermark_period_s = declare(self, 'watermark_period_s', 0.2, 'Period of the gate\'s '
                                     'watermark on gate_watermarks [s].', lo=0.01, hi=5.0)
        try:
            store = load_store(store_file)
            gate = store.gate(gate_id)
        except StoreConfigError as exc:
            raise StartupError(str(exc)) from None
        except KeyError as exc:
            raise StartupError(exc.args[0]) from None
        self.gate = gate
        self.kind = KIND[gate.kind]
        self.port = port or gate.reader.port
        baud = baud or gate.reader.baud
        self.decoder = GateDecoder(gate.id, dedupe_s)
        self.link = SerialLink(self.port, baud, stale_timeout_s=stale_timeout_s,
                               reconnect_on_stale=False, max_line_bytes=256)
        self.pub = self.create_publisher(GateEvent, 'gate_events', EVENT_QOS)
        self.watermark = WatermarkPublisher(self, 'gate_watermarks', f'gate/{gate.id}',
                                            watermark_period_s)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(poll_period_s, self._poll)
        self.create_timer(diagnostics_period_s, self._publish_diagnostics)
        self._last_scan_s: float | None = None
        self.get_logger().info(f'gate {gate.id} ({gate.kind}): reader on {self.port} at '
                               f'{baud} baud, dedupe {dedupe_s:g} s')

    def _poll(self) -> None:
        try:
            self._poll_once()
        except Exception as exc:  # noqa: BLE001 - a bad device must never take the node down
            self.get_logger().error(f'gate {self.gate.id}: poll failed: {exc!r}',
                                    throttle_duration_sec=5.0)
        # a scan read from now on is stamped later than this: every scan up to it is out
        self.watermark.publish(self.get_clock().now().nanoseconds)

    def _poll_once(self) -> None:
        lines = self.link.poll()
        log = self.get_logger()
        for ev in self.link.take_events():
            text = f'gate {self.gate.id}: {ev.detail}'
            if ev.kind in (LinkEvent.CONNECTED, LinkEvent.ACTIVE):
                log.info(text)
            elif ev.kind == LinkEvent.TOO_LONG:
                log.warning(text, throttle_duration_sec=5.0)
            else:
                log.warning(text)
        if not lines:
            return
        receive_ns = self.get_clock().now().nanoseconds
        for line in lines:
            scan, reason, why = self.decoder.feed(line, receive_ns)
            if scan is None:
                if reason == 'duplicate':
                    log.debug(why)
                else:
                    log.warning(why, throttle_duration_sec=2.0)
                continue
            self._last_scan_s = time.monotonic()
            self.pub.publish(GateEvent(
                header=Header(stamp=ns_stamp(scan.stamp_ns), frame_id=self.gate.frame_id),
                event_id=scan.event_id, gate_id=self.gate.id, kind=self.kind,
                shopper_id=scan.account_id))
            self.watermark.event_published(scan.event_id)
            log.info(f'gate {self.gate.id}: {self.gate.kind} of {scan.account_id} '
                     f'({scan.event_id})')

    def _publish_diagnostics(self) -> None:
        st, d = self.link.state, self.decoder
        now = time.monotonic()
        if not st.connected:
            level, message = 'error', f'disconnected: {st.last_error}'
        elif st.stale:
            level, message = 'warn', st.last_error
        else:
            level, message = 'ok', 'listening'
        rejected = dict(d.rejected)
        if st.too_long_lines:
            rejected['too_long'] = rejected.get('too_long', 0) + st.too_long_lines
        values = {'connected': st.connected, 'port': self.port, 'gate_kind': self.gate.kind,
                  'reconnects': st.reconnects, 'disconnects': st.disconnects,
                  'scans_accepted': d.accepted,
                  'duplicates_suppressed': d.deduper.suppressed,
                  'garbage_lines': sum(rejected.values())}
        values.update({f'garbage_lines.{k}': v for k, v in sorted(rejected.items())})
        values.update({
            'stale': st.stale,
            'last_byte_age_s': (now - st.last_byte_s) if st.last_byte_s is not None else '',
            'last_scan_age_s': (now - self._last_scan_s) if self._last_scan_s else '',
            'last_error': st.last_error,
        })
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status.append(diagnostics.status(f'store/gate/{self.gate.id}', self.port, level,
                                             message, values))
        self.pub_diag.publish(msg)


def main(args=None):
    return run_node('gate_driver', GateDriver, (StartupError,), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
