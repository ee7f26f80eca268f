"""One description of the store's node graph, built from the store description.

Both ``launch/store.launch.py`` (launch_ros, on a real ROS install) and the local runner
(``store_bringup.runner``, one process per node, for machines without launch_ros) are thin layers
over :func:`build_graph`, so the two cannot drift: same nodes, names, namespaces, remappings and
parameters.

No rclpy import here: the graph is plain data.
"""
from __future__ import annotations

import copy
import pathlib
import zlib
from dataclasses import dataclass, field
from typing import Any

from store_common.description import Store
from store_common.params import load_params_file  # noqa: F401 - re-exported

MODES = ('hardware', 'sim', 'replay')


@dataclass(frozen=True)
class NodeSpec:
    """One node instance: what ``launch_ros.actions.Node`` needs, and what the runner needs."""

    package: str
    executable: str
    name: str
    namespace: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    respawn: bool = False
    # The run ends when this node exits (the runner's --until); e.g. the receipt recorder.
    ends_run: bool = False

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. ``/store/pc_g1/loadcell_driver``."""
        return f'{self.namespace.rstrip("/")}/{self.name}'

    @property
    def label(self) -> str:
        """Short unique label for logs: the fully qualified name without the store namespace."""
        return self.fqn.strip('/').split('/', 1)[-1].replace('/', '.')


@dataclass
class GraphOptions:
    """How to run the store. ``mode``: hardware (real serial devices), sim (the simulator
    provides pseudo-terminal devices under ``run_dir``), replay (sensor topics come from a bag:
    no drivers, no simulator)."""

    mode: str = 'hardware'
    namespace: str = '/store'
    params_file: str | None = None          # per-node parameters YAML (config/params/store.yaml)
    run_dir: str | None = None              # sim: pty symlinks; runs: recorder output
    scenario_file: str | None = None        # sim: the scenario to play
    db_path: str | None = None              # cart database; default under run_dir or ~/.local
    record: bool = False                    # add the receipt recorder (ends the run when done)
    use_sim_time: bool = False              # nodes follow /clock (bag replay)
    bag_file: str | None = None             # replay: bag to play (bag_play, /clock from it)
    bag_rate: float = 1.0                   # replay: time scale of the bag
    bag_topics: str | None = None           # replay: comma-separated topics; None: all
    record_bag: str | None = None           # record record_topics to this new bag
    record_topics: str = 'sensors'          # a preset (sensors, all) or topic names, commas
    render_png: str | None = None           # write a top-down PNG of the markers here
    cameras: bool = False                   # cameras, detector, tracker, fusion -> the cart
    camera_port: int | None = None          # sim: stream port; None = derived from run_dir
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # node name -> params


def build_graph(store: Store, options: GraphOptions) -> list[NodeSpec]:
    """The node instances for ``store`` in ``options.mode``, in start order."""
    if options.mode not in MODES:
        raise ValueError(f'mode {options.mode!r} is not one of {", ".join(MODES)}')
    if options.mode == 'sim' and not (options.run_dir and options.scenario_file):
        raise ValueError('sim mode needs run_dir and scenario_file')
    ns = '/' + options.namespace.strip('/')
    per_node = load_params_file(options.params_file) if options.params_file else {}
    for node, params in options.overrides.items():
        per_node.setdefault(node, {}).update(params)
    store_file = str(pathlib.Path(store.path).resolve())
    run_dir = pathlib.Path(options.run_dir).resolve() if options.run_dir else None

    if options.bag_file and options.mode != 'replay':
        raise ValueError(f'bag_file is for replay mode, not {options.mode}')
    # a bag played here drives every node's clock (bag_play itself runs on wall time)
    use_sim_time = options.use_sim_time or bool(options.bag_file)

    def params(node: str, **instance: Any) -> dict[str, Any]:
        p = copy.deepcopy(per_node.get(node, {}))
        p.update({k: v for k, v in instance.items() if v is not None})
        p['store_file'] = store_file
        if use_sim_time:
            p['use_sim_time'] = True
        return p

    specs: list[NodeSpec] = []
    if options.record_bag:
        # first, so it subscribes before the sensors start
        specs.append(NodeSpec('store_bags', 'bag_record', 'bag_record', ns, params(
            'bag_record', bag_path=str(pathlib.Path(options.record_bag).resolve()),
            topics=options.record_topics or 'sensors', namespace=ns)))
    if options.bag_file:
        p = params('bag_play', bag_path=str(pathlib.Path(options.bag_file).resolve()),
                   rate=float(options.bag_rate), topics=options.bag_topics or '',
                   exit_when_done=False)
        p.pop('use_sim_time', None)
        p.pop('store_file', None)
        specs.append(NodeSpec('store_bags', 'bag_play', 'bag_play', ns, p))
    cams = options.cameras and options.mode in ('hardware', 'sim') and bool(store.cameras)
    cam_port = (options.camera_port or camera_port_for(run_dir)) if cams and run_dir else 0
    if options.mode == 'sim':
        specs.append(NodeSpec('store_sim', 'sim', 'sim', ns, params(
            'sim', scenario_file=str(pathlib.Path(options.scenario_file).resolve()),
            run_dir=str(run_dir), camera_stream_port=cam_port if cams else None)))

    if options.mode in ('hardware', 'sim'):
        for c in store.controllers:
            port = str(run_dir / c.id) if options.mode == 'sim' else c.port
            # sim: tare overrides live in the run, so a tare file from an earlier run or a
            # real store never shifts the simulated weights
            tare_file = str(run_dir / 'tare_state.yaml') if options.mode == 'sim' else None
            specs.append(NodeSpec('store_drivers', 'loadcell_driver', 'loadcell_driver',
                                  f'{ns}/{c.id}', params('loadcell_driver', controller_id=c.id,
                                                         port=port, baud=c.baud,
                                                         calibration_state_file=tare_file)))
        for g in store.gates:
            port = str(run_dir / f'gate_{g.id}') if options.mode == 'sim' else g.reader.port
            specs.append(NodeSpec('store_drivers', 'gate_driver', f'gate_driver_{g.id}', ns,
                                  params('gate_driver', gate_id=g.id, port=port,
                                         baud=g.reader.baud)))

    if cams:
        # sim: the simulator renders every camera and streams it; the drivers open the stream
        # like an IP camera's (see store_sim.camera_stream for the time base)
        for c in store.cameras:
            source = (f'http://127.0.0.1:{cam_port}/{c.id}.mjpg' if options.mode == 'sim'
                      else str(c.source))
            specs.append(NodeSpec('store_perception', 'camera_driver', 'camera_driver',
                                  f'{ns}/cameras/{c.id}',
                                  params('camera_driver', camera_id=c.id, source=source)))
        # the run's frame totals (in, processed, dropped, latency) at stop, for the benchmarks
        specs.append(NodeSpec('store_perception', 'detector', 'detector', ns, params(
            'detector', camera_ids=[c.id for c in store.cameras],
            summary_file=str(run_dir / 'detector_summary.json') if run_dir else None,
            # sim runs are bounded: every frame's outcome, for the reach-frame count
            frames_file=(str(run_dir / 'detector_frames.jsonl')
                         if run_dir and options.mode == 'sim' else None))))
        # detections + gate scans -> shopper tracks; shelf events held until the tracks after
        # them are in, then fused (who took what) for the cart
        specs.append(NodeSpec('store_fusion', 'tracker', 'tracker', ns, params('tracker')))
        specs.append(NodeSpec('store_fusion', 'fusion', 'fusion', ns, params(
            'fusion', shelf_sources=[f'shelf/{g.id}' for g in store.gondolas])))

    for g in store.gondolas:
        topics = [f'{ns}/{c.id}/plate_weights' for c in store.controllers_of_gondola(g.id)]
        specs.append(NodeSpec('store_shelf', 'shelf_events', 'shelf_events', f'{ns}/{g.id}',
                              params('shelf_events', gondola_id=g.id, weight_topics=topics),
                              remappings=(('shelf_events', f'{ns}/shelf_events'),
                                          ('shelf_watermarks', f'{ns}/shelf_watermarks'))))

    db_path = options.db_path
    if db_path is None and run_dir is not None:
        db_path = str(run_dir / 'carts.sqlite')
    # the cart decides in stamp order once every source of events has passed the stamp (its
    # watermark), however a restart redelivers them; gate watermarks come from the drivers, or
    # from the bag in replay
    sources = [f'gate/{g.id}' for g in store.gates]
    sources += ['fusion'] if cams else [f'shelf/{g.id}' for g in store.gondolas]
    specs.append(NodeSpec('store_cart', 'cart', 'cart', ns, params(
        'cart', db_path=db_path, use_fused_events=True if cams else None,
        event_sources=sources)))
    # human review: queue, evidence, web console (its db and URL file beside the cart's)
    review_db = str(pathlib.Path(db_path).with_name('review.sqlite')) if db_path else None
    specs.append(NodeSpec('store_review', 'review', 'review', ns, params(
        'review', db_path=review_db,
        url_file=str(run_dir / 'review_url.txt') if run_dir is not None else None)))

    specs.append(NodeSpec('store_viz', 'store_markers', 'store_markers', ns,
                          params('store_markers')))
    if options.render_png:
        specs.append(NodeSpec('store_viz', 'render_markers', 'render_markers', ns, params(
            'render_markers', out_png=str(pathlib.Path(options.render_png).resolve()))))

    if options.record:
        if run_dir is None:
            raise ValueError('record needs run_dir')
        specs.append(NodeSpec('store_sim', 'receipt_recorder', 'receipt_recorder', ns, params(
            'receipt_recorder', out_dir=str(run_dir),
            scenario_file=(str(pathlib.Path(options.scenario_file).resolve())
                           if options.scenario_file else None)), ends_run=True))

    names = [s.fqn for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f'duplicate node names in the graph: {", ".join(sorted(dup))}')
    return specs


def camera_port_for(run_dir: pathlib.Path) -> int:
    """A localhost port for the simulator's camera streams, stable per run directory."""
    return 20000 + zlib.crc32(str(run_dir).encode()) % 20000


def ros_args(spec: NodeSpec, params_file: str | None = None) -> list[str]:
    """Command-line ROS arguments that start ``spec`` the way launch_ros would."""
    args = ['--ros-args', '-r', f'__node:={spec.name}', '-r', f'__ns:={spec.namespace}']
    for src, dst in spec.remappings:
        args += ['-r', f'{src}:={dst}']
    if params_file:
        args += ['--params-file', params_file]
    return args


def params_document(specs: list[NodeSpec]) -> dict[str, Any]:
    """A parameters YAML document for all ``specs``, keyed by fully qualified node name."""
    return {s.fqn: {'ros__parameters': s.parameters} for s in specs}
