"""Plate controller driver node: serial lines in, raw and calibrated plate readings out.

All logic lives in :mod:`store_drivers.serial_link` and :mod:`store_drivers.loadcell`; this
module wires parameters, topics, the ``tare`` service, logging and diagnostics.

Topics (relative, placed by namespace, e.g. ``/store/pc_g1``):
  ``plate_raw`` (RawPlateReadings) and ``plate_weights`` (PlateWeights), RELIABLE_STREAM_QOS,
  one message per delivered batch; ``/diagnostics`` at ``diagnostics_period_s``.
Service: ``tare`` (TarePlate).
"""
from __future__ import annotations

import math
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from std_msgs.msg import Header
from store_common import diagnostics
from store_common import plate_protocol as pp
from store_common.description import load_store, StoreConfigError
from store_common.ros import declare, ns_stamp, RELIABLE_STREAM_QOS, run_node
from store_interfaces.msg import PlateWeight, PlateWeights, RawPlateReadings, RawPlateSample
from store_interfaces.srv import TarePlate

from store_drivers.loadcell import Calibration, PlateDecoder, TareAverager, TareStore
from store_drivers.serial_link import LinkEvent, SerialLink


class StartupError(RuntimeError):
    """The node cannot start (bad store file, unknown controller): logged, exit code 1."""


def default_state_file(store_id: str) -> str:
    ros_home = os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')
    return os.path.join(ros_home, 'store_drivers', f'tare_{store_id}.yaml')


class LoadcellDriver(Node):

    def __init__(self):
        super().__init__('loadcell_driver')
        store_file = declare(self, 'store_file', '',
                             'Store description YAML (config/stores/<store>.yaml).')
        controller_id = declare(self, 'controller_id', '',
                                'Plate controller id from the store description; "" is allowed '
                                'when the store has exactly one controller.')
        port = declare(self, 'port', '',
                       'Serial port of the controller; "" uses the port from the store '
                       'description.')
        baud = declare(self, 'baud', 0, 'Baud rate; 0 uses the store description.',
                       lo=0, hi=4_000_000)
        stale_timeout_s = declare(self, 'stale_timeout_s', 2.0,
                                  'Reopen the port after this long without a byte [s]; the '
                                  'controller streams continuously. 0 disables.', lo=0.0,
                                  hi=600.0)
        poll_period_s = declare(self, 'poll_period_s', 0.1,
                                'Period of the serial poll [s]; each poll publishes one batch '
                                '(every sample keeps its own stamp). 0.1: 10 messages/s per '
                                'controller to each subscriber; 0.02 cost the graph about 5x '
                                'the callbacks (bench_graph_cpu).',
                                lo=0.001, hi=1.0)
        state_file = declare(self, 'calibration_state_file', '',
                             'YAML file of tare overrides, loaded at start and written by the '
                             'tare service; "" uses $ROS_HOME/store_drivers/tare_<store>.yaml.')
        diagnostics_period_s = declare(self, 'diagnostics_period_s', 1.0,
                                       'Period of /diagnostics [s].', lo=0.1, hi=60.0)
        self.tare_default_s = declare(self, 'tare_averaging_s', 2.0,
                                      'Averaging time of a tare request that gives 0 [s].',
                                      lo=0.1, hi=60.0)
        self.tare_max_sd_grams = declare(self, 'tare_max_sd_grams', 20.0,
                                         'A tare fails if a plate reading varies more than this '
                                         '(standard deviation) while averaging: not still [g].',
                                         lo=0.0, hi=10000.0)
        try:
            store = load_store(store_file)
            if not controller_id:
                if len(store.controllers) != 1:
                    raise StartupError(
                        f'parameter controller_id is required: {store_file} has controllers '
                        f'{", ".join(c.id for c in store.controllers)}')
                controller_id = store.controllers[0].id
            controller = store.controller(controller_id)
        except StoreConfigError as exc:
            raise StartupError(str(exc)) from None
        except KeyError as exc:
            raise StartupError(exc.args[0]) from None
        self.controller = controller
        self.frame_id = store.frame_id
        self.port = port or controller.port
        baud = baud or controller.baud
        log = self.get_logger()

        self.calibration = Calibration.from_store(store, controller.id)
        self.tare_store = TareStore(state_file or default_state_file(store.id))
        try:
            applied, _ = self.calibration.apply_overrides(self.tare_store.load())
            if applied:
                log.info(f'tare overrides from {self.tare_store.path} for {", ".join(applied)}')
        except (OSError, ValueError) as exc:
            log.error(f'ignoring tare state file: {exc}; using the store description tares')

        self.decoder = PlateDecoder(controller.id, controller.n_channels, self.calibration,
                                    port=self.port, sample_rate_hz=controller.sample_rate_hz)
        self.link = SerialLink(self.port, baud, stale_timeout_s=stale_timeout_s,
                               reconnect_on_stale=True, max_line_bytes=pp.MAX_LINE_BYTES)

        self.pub_raw = self.create_publisher(RawPlateReadings, 'plate_raw', RELIABLE_STREAM_QOS)
        self.pub_weights = self.create_publisher(PlateWeights, 'plate_weights',
                                                 RELIABLE_STREAM_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        # the poll and diagnostics share one group; the tare service waits in another thread
        # while the poll keeps feeding its averager
        io_group = MutuallyExclusiveCallbackGroup()
        self._lock = threading.Lock()
        self._tares: list[tuple[TareAverager, threading.Event]] = []
        self.create_timer(poll_period_s, self._poll, callback_group=io_group)
        self.create_timer(diagnostics_period_s, self._publish_diagnostics,
                          callback_group=io_group)
        self.create_service(TarePlate, 'tare', self._on_tare,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self._diag_prev = (time.monotonic(), 0, 0, 0, 0, 0, 0, 0)
        log.info(f'controller {controller.id}: port {self.port} at {baud} baud, '
                 f'{controller.n_channels} channels at {controller.sample_rate_hz:g} Hz, '
                 f'plates {", ".join(self.calibration.plate_ids)}')

    # --- serial poll --------------------------------------------------------------------------
    def _poll(self) -> None:
        try:
            self._poll_once()
        except Exception as exc:  # noqa: BLE001 - a bad device must never take the node down
            self.get_logger().error(f'controller {self.controller.id}: poll failed: {exc!r}',
                                    throttle_duration_sec=5.0)

    def _poll_once(self) -> None:
        lines = self.link.poll()
        self._log_link_events()
        if not lines:
            return
        receive_ns = self.get_clock().now().nanoseconds
        batch = self.decoder.decode(lines, receive_ns)
        self._log_decoder_messages()
        if batch is None:
            return
        self._publish(batch)
        with self._lock:
            for avg, done in self._tares:
                if not done.is_set() and avg.feed(batch.samples):
                    done.set()

    def _log_link_events(self) -> None:
        log = self.get_logger()
        for ev in self.link.take_events():
            text = f'controller {self.controller.id}: {ev.detail}'
            if ev.kind == LinkEvent.CONNECTED:
                log.info(text)
            elif ev.kind == LinkEvent.TOO_LONG:
                self.get_logger().warning(text, throttle_duration_sec=5.0)
            else:
                log.warning(text)

    def _log_decoder_messages(self) -> None:
        log = self.get_logger()
        for m in self.decoder.take_messages():
            if m.key == 'garbage':
                log.warning(f'{m.text} ({self.decoder.counters.garbage_total} garbage lines '
                            'so far; throttled)', throttle_duration_sec=5.0)
            elif m.level == 'error':
                log.error(m.text)
            elif m.level == 'warn':
                log.warning(m.text, throttle_duration_sec=5.0)
            else:
                log.info(m.text)

    def _publish(self, batch) -> None:
        stamp = ns_stamp(batch.newest_stamp_ns)
        raw = RawPlateReadings(header=Header(stamp=stamp, frame_id=self.controller.id),
                               controller_id=self.controller.id,
                               first_sequence=batch.first_sequence,
                               dropped_frames=batch.dropped_frames)
        weights = PlateWeights(header=Header(stamp=stamp, frame_id=self.frame_id),
                               controller_id=self.controller.id)
        for s in batch.samples:
            t = ns_stamp(s.stamp_ns)
            raw.samples.append(RawPlateSample(stamp=t, channel=s.channel, plate_id=s.plate_id,
                                              adc_counts=s.adc_counts, status=s.status))
            if s.plate_id:
                weights.weights.append(PlateWeight(stamp=t, plate_id=s.plate_id,
                                                   weight_grams=s.weight_grams,
                                                   adc_counts=s.adc_counts, valid=s.valid))
        self.pub_raw.publish(raw)
        self.pub_weights.publish(weights)

    # --- tare ---------------------------------------------------------------------------------
    def _on_tare(self, request: TarePlate.Request, response: TarePlate.Response):
        log = self.get_logger()
        cal = self.calibration
        if request.plate_id and request.plate_id not in cal.by_plate:
            response.success = False
            response.message = (f'plate {request.plate_id!r} is not on controller '
                                f'{self.controller.id} (plates: {", ".join(cal.plate_ids)})')
            return response
        plates = [request.plate_id] if request.plate_id else cal.plate_ids
        duration_s = request.averaging_s if request.averaging_s > 0 else self.tare_default_s
        if not math.isfinite(duration_s) or duration_s > 60.0:
            response.success = False
            response.message = f'averaging_s {request.averaging_s} must be in (0, 60] s'
            return response
        avg, done = TareAverager(plates, duration_s), threading.Event()
        with self._lock:
            self._tares.append((avg, done))
        try:
            finished = done.wait(timeout=duration_s + 3.0)
        finally:
            with self._lock:
                self._tares.remove((avg, done))
        if not finished:
            response.success = False
            response.message = (f'no data from controller {self.controller.id} on {self.port} '
                                f'within {duration_s + 3.0:g} s')
            return response
        try:
            tares = avg.result()
        except ValueError as exc:
            response.success = False
            response.message = f'tare failed: {exc}'
            return response
        sd = {p: avg.sd_counts(p) * cal.by_plate[p].grams_per_count for p in plates}
        moving = [f'{p} ({g:.1f} g)' for p, g in sd.items() if g > self.tare_max_sd_grams]
        if moving:
            response.success = False
            response.message = (f'tare failed: plates not still, standard deviation over '
                                f'{self.tare_max_sd_grams:g} g: {", ".join(moving)}')
            return response
        for p, counts in tares.items():
            cal.set_tare(p, counts)
        response.plate_ids = list(tares)
        response.tare_offset_counts = [int(tares[p]) for p in tares]
        response.success = True
        response.message = f'tared {len(tares)} plate(s) over {duration_s:g} s'
        try:
            self.tare_store.save(self.controller.id, tares)
            response.message += f'; saved to {self.tare_store.path}'
        except OSError as exc:
            response.message += f'; NOT saved ({exc}): lost on restart'
            log.error(f'could not save tare state to {self.tare_store.path}: {exc}')
        log.info(f'tare: {response.message}: ' + ', '.join(f'{p}={c}' for p, c in tares.items()))
        return response

    # --- diagnostics --------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        st, c = self.link.state, self.decoder.counters
        garbage = dict(c.garbage)
        if st.too_long_lines:
            garbage['too_long'] = garbage.get('too_long', 0) + st.too_long_lines
        garbage_total = sum(garbage.values())
        now = time.monotonic()
        clock = self.decoder.clock
        t0, rows0, garb0, drop0, sat0, nr0, rej0, anchor0 = self._diag_prev
        dt = max(now - t0, 1e-6)
        rate_hz = (c.rows - rows0) / dt
        self._diag_prev = (now, c.rows, garbage_total, c.dropped_frames, c.saturated,
                           c.not_ready, c.clock_rejected, clock.reanchors)
        expected = self.controller.sample_rate_hz
        level, problems = 'ok', []
        if not st.connected:
            level = 'error'
            problems.append(f'disconnected: {st.last_error}')
        elif self.decoder.mismatch:
            level = 'error'
            problems.append(self.decoder.mismatch)
        else:
            if rate_hz < 0.8 * expected:
                problems.append(f'sample rate {rate_hz:.1f} Hz, expected {expected:g} Hz')
            if garbage_total > garb0:
                problems.append(f'{garbage_total - garb0} garbage lines')
            if c.dropped_frames > drop0:
                problems.append(f'{c.dropped_frames - drop0} dropped frames')
            if c.saturated > sat0:
                problems.append(f'{c.saturated - sat0} saturated samples')
            if c.not_ready > nr0:
                problems.append(f'{c.not_ready - nr0} not-ready samples')
            if c.clock_rejected > rej0:
                problems.append(f'{c.clock_rejected - rej0} rows refused for their tick '
                                f'(last: {clock.last_rejection})')
            if clock.reanchors > anchor0:
                problems.append('controller clock reset or jumped: time mapping re-anchored')
            if problems:
                level = 'warn'
        values = {
            'connected': st.connected,
            'port': self.port,
            'reconnects': st.reconnects,
            'disconnects': st.disconnects,
            'garbage_lines': garbage_total,
        }
        values.update({f'garbage_lines.{k}': v for k, v in sorted(garbage.items())})
        values.update({
            'dropped_frames': c.dropped_frames,
            'sample_rate_hz': rate_hz,
            'expected_sample_rate_hz': expected,
            'rows': c.rows,
            'saturated_samples': c.saturated,
            'not_ready_samples': c.not_ready,
            'channel_errors': c.channel_errors,
            'sequence_resyncs': c.seq_resyncs,
            'clock_rejected_rows': c.clock_rejected,
            'clock_reanchors': clock.reanchors,
            'clock_controller_resets': clock.resets,
            'clock_host_jumps': clock.host_jumps,
            # host time - controller tick of the anchor [s]: jumps show a re-anchor
            'clock_offset_s': clock.offset_ns / 1e9 if clock.offset_ns is not None else '',
            'firmware': self.decoder.info.firmware if self.decoder.info else '',
            'last_byte_age_s': (now - st.last_byte_s) if st.last_byte_s is not None else '',
            'last_error': st.last_error,
        })
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status.append(diagnostics.status(
            f'store/loadcell/{self.controller.id}', self.port, level,
            '; '.join(problems) if problems else 'streaming', values))
        self.pub_diag.publish(msg)


def main(args=None):
    return run_node('loadcell_driver', LoadcellDriver, (StartupError,), args=args, threads=2)


if __name__ == '__main__':
    raise SystemExit(main())
