"""render_markers: top-down PNG of the store's marker topics (what rviz would show, from above).

As a node (in the graph, or alone) it subscribes to ``markers/layout`` and ``markers/state`` and
writes ``out_png`` every ``period_s`` (titled "store (live)") and at shutdown (titled "store
after the run", with the clock time): the last picture of a run says the run has ended. With
``duration_s`` > 0 it exits after that long. As a CLI it reads the marker topics from a bag
instead (no ROS graph needed)::

    render_markers --out store.png --duration 5            # live, 5 s
    render_markers --out store.png --bag out/run1/bag      # from a recorded bag (last state)
    ros2 run store_viz render_markers --ros-args -p out_png:=/tmp/store.png -p period_s:=2.0
"""
from __future__ import annotations

import argparse
import sys
import time

from store_viz.markers import LEGEND
from store_viz.render import MarkerScene, render, save_png

TOPICS = ('markers/layout', 'markers/state')


def title_of(final: bool, now_s: float | None = None) -> str:
    """The PNG's title: live while the graph runs, "after the run" once it has ended."""
    if not final:
        return 'store (live)'
    return f'store after the run ({time.strftime("%H:%M:%S", time.localtime(now_s))})'


def render_bag(bag: str, out: str, namespace: str = '/store', until_s: float | None = None,
               px_per_m: float = 150.0) -> int:
    """Replay the marker topics of ``bag`` into a scene and render it; returns markers drawn."""
    from store_bags.bag import BagReader
    scene = MarkerScene()
    ns = '/' + namespace.strip('/')
    with BagReader(bag) as reader:
        topics = reader.check_topics([f'{ns}/{t}' for t in TOPICS])
        stop = None if until_s is None else reader.start_ns + int(until_s * 1e9)
        for m in reader.messages(topics):
            if stop is not None and m.stamp_ns > stop:
                break
            scene.update(m.topic, reader.deserialize(m).markers)
    markers = scene.markers()
    title = f'store at {until_s:g} s of the bag' if until_s is not None else \
        'store at the end of the bag'
    save_png(out, render(markers, legend=LEGEND, title=title, px_per_m=px_per_m))
    return len(markers)


def run_node(args, out: str, duration_s: float, period_s: float) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from visualization_msgs.msg import MarkerArray

    from store_common.ros import declare, spin_until, STATE_QOS

    class RenderMarkers(Node):
        def __init__(self):
            super().__init__('render_markers')
            self.out = declare(self, 'out_png', out, 'PNG file to write.')
            self.duration_s = declare(self, 'duration_s', duration_s, 'Exit after this long; 0: '
                                      'run until shutdown [s].', lo=0.0, hi=1e6)
            period = declare(self, 'period_s', period_s, 'Write the PNG this often; 0: only at '
                             'the end [s].', lo=0.0, hi=3600.0)
            self.px_per_m = declare(self, 'px_per_m', 150.0, 'Image scale [px/m].', lo=10.0,
                                    hi=1000.0)
            if not self.out:
                raise ValueError('out_png (or --out) is required')
            self.scene = MarkerScene()
            self.create_subscription(MarkerArray, 'markers/layout',
                                     lambda m: self.scene.update('layout', m.markers), STATE_QOS)
            self.create_subscription(MarkerArray, 'markers/state',
                                     lambda m: self.scene.update('state', m.markers), 10)
            if period > 0:
                self.create_timer(period, self.write)

        def write(self, final: bool = False) -> None:
            markers = self.scene.markers()
            if markers:
                save_png(self.out, render(markers, legend=LEGEND, title=title_of(final),
                                          px_per_m=self.px_per_m))

    node = None
    try:
        with rclpy.init(args=args):
            node = RenderMarkers()
            end = time.monotonic() + node.duration_s if node.duration_s > 0 else None
            try:
                spin_until(node, lambda: end is not None and time.monotonic() >= end)
            finally:
                node.write(final=True)
                node.get_logger().info(f'wrote {node.out} ({len(node.scene.markers())} markers)')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    ros_args = []
    cli = list(argv[1:])
    if '--ros-args' in cli:
        i = cli.index('--ros-args')
        cli, ros_args = cli[:i], cli[i:]
    ap = argparse.ArgumentParser(prog='render_markers', description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default='', help='PNG file to write')
    ap.add_argument('--bag', help='read the marker topics from this bag instead of the graph')
    ap.add_argument('--namespace', default='/store', help='store namespace of the topics')
    ap.add_argument('--until', type=float, default=None,
                    help='bag: render the state this many seconds into the bag (default: end)')
    ap.add_argument('--duration', type=float, default=0.0,
                    help='live: exit after this many seconds (0: until Ctrl-C)')
    ap.add_argument('--period', type=float, default=0.0,
                    help='live: also write the PNG this often [s]')
    args = ap.parse_args(cli)
    if args.bag:
        from store_bags.bag import BagError
        try:
            n = render_bag(args.bag, args.out or 'store.png', args.namespace, args.until)
        except BagError as exc:
            print(f'render_markers: error: {exc}', file=sys.stderr)
            return 1
        print(f'wrote {args.out or "store.png"} ({n} markers)')
        return 0
    return run_node([argv[0]] + ros_args, args.out, args.duration, args.period)


if __name__ == '__main__':
    sys.exit(main())
