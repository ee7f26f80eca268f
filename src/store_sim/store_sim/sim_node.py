"""The store simulator node: plays a scenario on emulated plate controllers and gate readers.

Creates one pseudo-terminal per plate controller (``<run_dir>/<controller_id>``) and per gate
(``<run_dir>/gate_<gate_id>``); they stream idle rows at once, and the scenario clock starts
``start_delay_s`` later so that the drivers have connected. With ``camera_stream_port`` set,
it first renders every camera of the store (``<run_dir>/cameras``, reused when current), then
serves them as live MJPEG streams on the scenario clock (``store_sim.camera_stream``); the
scenario clock's start in ROS time is written to ``<run_dir>/scenario_clock.json``. Publishes
the truth of every enter, action and exit on ``sim/ground_truth`` when it happens, and keeps
streaming idle rows after the scenario ends, until shut down. The physics and the emulators
live in plain modules.
"""
from __future__ import annotations

import json
import pathlib
import time

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from store_common.description import load_store, StoreConfigError
from store_common.ros import declare, EVENT_QOS, run_node
from store_interfaces.msg import DetectionArray

from store_sim.camera_stream import CameraStreamServer
from store_sim.emulators import gate_scans, GateReaderEmulator, PlateControllerEmulator
from store_sim.physics import StorePhysics
from store_sim.render_cache import ensure_render
from store_sim.scenario import load_scenario, ScenarioError, truth_events

# matches the detector's publisher whatever its reliability; one message is all it takes
READY_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                       history=HistoryPolicy.KEEP_LAST)


class SimNode(Node):

    def __init__(self):
        super().__init__('sim')
        store_file = declare(self, 'store_file', '', 'Store description YAML file.')
        scenario_file = declare(self, 'scenario_file', '', 'Scenario YAML or JSON file to play.')
        run_dir = declare(self, 'run_dir', '', 'Directory where the pty symlinks '
                          '<controller_id> and gate_<gate_id> are created.')
        self.start_delay_s = declare(self, 'start_delay_s', 3.0, 'Idle streaming before the '
                                     'scenario clock starts, so drivers can connect [s].',
                                     lo=0.0, hi=120.0)
        garbage = declare(self, 'garbage_line_rate', 0.0, 'Probability that a plate row is '
                          'replaced or preceded by a garbage line.', lo=0.0, hi=0.5)
        seed = declare(self, 'seed', -1, 'Seed of physics and emulators; -1 uses the scenario '
                       'seed.', lo=-1, hi=2 ** 31 - 1)
        disconnect_after_s = declare(self, 'disconnect_after_s', -1.0, 'Fault injection: close '
                                     'every controller pty this long after start and recreate '
                                     'it disconnect_for_s later; < 0 disables [s].',
                                     lo=-1.0, hi=3600.0)
        disconnect_for_s = declare(self, 'disconnect_for_s', 2.0, 'Length of an injected '
                                   'disconnect [s].', lo=0.1, hi=60.0)
        poll_period_s = declare(self, 'poll_period_s', 0.02, 'Emulator polling period [s].',
                                lo=0.005, hi=0.1)
        camera_port = declare(self, 'camera_stream_port', 0, 'Serve the rendered camera '
                              'videos as MJPEG streams on this localhost port; 0 = no '
                              'cameras.', lo=0, hi=65535)
        camera_fps = declare(self, 'camera_fps', 10.0, 'Rendered camera frame rate [Hz].',
                             lo=1.0, hi=30.0)
        wait_detections_s = declare(self, 'wait_for_detections_s', 0.0, 'With cameras: hold '
                                    'the scenario clock until detections arrive from every '
                                    'camera, at most this long; 0 = do not wait [s].',
                                    lo=0.0, hi=600.0)
        cameras_ns = declare(self, 'cameras_namespace', 'cameras', 'Namespace of the camera '
                             'topics (relative to this node\'s namespace, or absolute).')
        render_jobs = declare(self, 'render_jobs', 2, 'Cameras rendered in parallel before '
                              'the scenario clock starts.', lo=1, hi=16)
        if not (store_file and scenario_file and run_dir):
            raise ValueError('store_file, scenario_file and run_dir must all be set')

        self.store = load_store(store_file)
        self.scenario = load_scenario(scenario_file, self.store)
        seed = self.scenario.seed if seed < 0 else seed
        self.physics = StorePhysics(self.store, self.scenario, seed=seed)
        self.pub = self.create_publisher(String, 'sim/ground_truth', EVENT_QOS)
        self.truth = truth_events(self.scenario, self.store)
        self.next_truth = 0

        run = pathlib.Path(run_dir)
        render_dir = run / 'cameras'
        if camera_port and self.store.cameras:
            self._render(store_file, scenario_file, render_dir, camera_fps, render_jobs)

        now = time.monotonic()
        self.run = run
        run.mkdir(parents=True, exist_ok=True)
        (run / 'scenario_clock.json').unlink(missing_ok=True)
        # Until the scenario clock is set, scenario time stays at -start_delay_s (the start
        # moves with the clock: see tick): the plates stream the rows of that moment (drift
        # and all, so nothing steps when the clock starts), no scan is read and the cameras
        # repeat their first frame.
        self.scenario_start = now + self.start_delay_s
        self.clock_set = False
        self.emulators = []
        self.waiting_for = None
        self._ready_subs = []
        if camera_port and self.store.cameras and wait_detections_s > 0:
            # a shopper who enters before the detector has loaded its models is never tracked
            # (the track is bound at the entrance scan): start once every camera is detected
            self.waiting_for = {c.id for c in self.store.cameras}
            self.wait_deadline = now + wait_detections_s
            self.wait_started = now
            self._ready_subs = [
                self.create_subscription(
                    DetectionArray, f'{cameras_ns}/{c.id}/detections',
                    lambda _msg, cid=c.id: self._detected(cid), READY_QOS)
                for c in self.store.cameras]
            self.get_logger().info(
                f'the scenario starts once detections arrive from every camera '
                f'(at most {wait_detections_s:g} s) and then {self.start_delay_s:g} s later')
        else:
            self._set_start(now)
        self.stream = None
        if camera_port and self.store.cameras:
            self.stream = CameraStreamServer(
                render_dir, lambda: time.monotonic() - self.scenario_start, port=camera_port,
                log=self.get_logger().info).start()
            self.get_logger().info(f'camera streams: {self.stream.url("<camera_id>")}')
        for c in self.store.controllers:
            emu = PlateControllerEmulator(
                c.id, c.n_channels, c.sample_rate_hz,
                (lambda t, cid=c.id: self.physics.controller_rows(cid, t)),
                run / c.id, scenario_start=self.scenario_start, seed=seed,
                garbage_line_rate=garbage,
                disconnect_after_s=disconnect_after_s if disconnect_after_s >= 0 else None,
                disconnect_for_s=disconnect_for_s)
            slave = emu.start(now)
            self.get_logger().info(f'plate controller {c.id}: {run / c.id} -> {slave} '
                                   f'({c.n_channels} channels at {c.sample_rate_hz:g} Hz)')
            self.emulators.append(emu)
        for gate_id, scans in gate_scans(self.scenario, self.store).items():
            emu = GateReaderEmulator(gate_id, scans, run / f'gate_{gate_id}',
                                     scenario_start=self.scenario_start)
            slave = emu.start(now)
            self.get_logger().info(f'gate reader {gate_id}: {run / f"gate_{gate_id}"} -> '
                                   f'{slave} ({len(scans)} scans)')
            self.emulators.append(emu)
        self.get_logger().info(
            f'scenario {scenario_file}: {len(self.scenario.shoppers)} shoppers, '
            f'{sum(len(s.actions) for s in self.scenario.shoppers)} actions, '
            f'{self.scenario.duration_s:g} s; starts in {self.start_delay_s:g} s')
        self.ended = False
        self.timer = self.create_timer(poll_period_s, self.tick)

    def _detected(self, camera_id: str) -> None:
        if self.waiting_for:
            self.waiting_for.discard(camera_id)

    def _hold(self, now: float) -> None:
        self.scenario_start = now + self.start_delay_s
        for emu in self.emulators:
            emu.scenario_start = self.scenario_start

    def _set_start(self, now: float) -> None:
        """Start the scenario clock ``start_delay_s`` after ``now`` (monotonic)."""
        self._hold(now)
        self.clock_set = True
        # the scenario clock in ROS time, for whoever lines images and truth up (fusion, tests)
        start_ns = self.get_clock().now().nanoseconds + int(self.start_delay_s * 1e9)
        tmp = self.run / '.scenario_clock.json.tmp'
        tmp.write_text(json.dumps({'scenario_start_ros_ns': start_ns,
                                   'start_delay_s': self.start_delay_s}) + '\n')
        tmp.replace(self.run / 'scenario_clock.json')

    def tick(self) -> None:
        now = time.monotonic()
        if self.waiting_for is not None and (not self.waiting_for or now > self.wait_deadline):
            if self.waiting_for:
                self.get_logger().warning(
                    f'no detections from {", ".join(sorted(self.waiting_for))} after '
                    f'{now - self.wait_started:.0f} s: starting the scenario anyway')
            elif hasattr(self, 'wait_started'):
                self.get_logger().info(f'every camera detected {now - self.wait_started:.1f} s '
                                       f'after start; the scenario starts in '
                                       f'{self.start_delay_s:g} s')
            # every detection message would still cost this process a callback (~35/s with 4
            # cameras): the subscriptions go. The node spins single-threaded, and the executor
            # skips an entity destroyed after its wait (rclpy catches InvalidHandle)
            for sub in self._ready_subs:
                self.destroy_subscription(sub)
            self._ready_subs = []
            self.waiting_for = None
            self._set_start(now)
        elif not self.clock_set:
            self._hold(now)
        for emu in self.emulators:
            emu.poll(now)
        t_s = now - self.scenario_start
        while self.next_truth < len(self.truth) and self.truth[self.next_truth]['t_s'] <= t_s:
            ev = dict(self.truth[self.next_truth])
            self.next_truth += 1
            ev['store'] = self.store.id
            ev['stamp_ns'] = self.get_clock().now().nanoseconds
            self.pub.publish(String(data=json.dumps(ev, sort_keys=True)))
            self.get_logger().info(f'truth t={ev["t_s"]:.2f} s: {ev["event"]} '
                                   f'{ev["shopper_id"]} {ev.get("kind", "")} '
                                   f'{ev.get("quantity", "")} {ev.get("sku", "")} '
                                   f'{ev.get("plate", "")}'.rstrip())
        if not self.ended and t_s >= self.scenario.duration_s:
            self.ended = True
            self.get_logger().info('scenario ended; plates keep streaming idle rows')

    def _render(self, store_file, scenario_file, render_dir, fps, jobs) -> None:
        # run_store renders before it starts the graph; under `ros2 launch` it happens here,
        # still before this node's scenario clock starts (render_cache: reused when current)
        how = ensure_render(store_file, scenario_file, render_dir, fps,
                            [c.id for c in self.store.cameras], jobs=jobs,
                            log=self.get_logger().info)
        if how == 'current':
            self.get_logger().info(f'camera videos in {render_dir} are current')

    def close(self) -> None:
        # the camera streams first, waiting for their client threads: one still decoding or
        # encoding inside OpenCV when the interpreter exits aborts the process (SIGABRT,
        # "terminate called without an active exception"; see store_sim.camera_stream)
        if getattr(self, 'stream', None) is not None:
            self.stream.close()
        for emu in self.emulators:
            emu.close()


def main(args=None):
    return run_node('sim', SimNode, (StoreConfigError, ScenarioError, ValueError), args=args,
                    startup_exit_code=2)


if __name__ == '__main__':
    raise SystemExit(main())
