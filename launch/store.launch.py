"""Launch the walk-out store's node graph on a real ROS 2 install.

    ros2 launch store_bringup store.launch.py store:=/path/to/store.yaml
    ros2 launch store_bringup store.launch.py mode:=sim scenario:=/path/s.yaml run_dir:=/tmp/run
    ros2 launch store_bringup store.launch.py mode:=replay bag:=/path/bag bag_rate:=2.0

The node list, names, namespaces, remappings and parameters come from
``store_bringup.graph.build_graph`` — the same description the local runner (``run_store``)
uses — so the two cannot drift. This file only turns that description into launch_ros actions.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from store_bringup.graph import build_graph, GraphOptions, MODES
from store_common.description import load_store

SHARE = get_package_share_directory('store_bringup')


def _nodes(context):
    def arg(name):
        value = LaunchConfiguration(name).perform(context)
        return value or None

    store = load_store(arg('store'))
    specs = build_graph(store, GraphOptions(
        mode=arg('mode'), namespace=arg('namespace'), params_file=arg('params_file'),
        run_dir=arg('run_dir'), scenario_file=arg('scenario'), db_path=arg('db_path'),
        record=arg('record') == 'true', use_sim_time=arg('use_sim_time') == 'true',
        bag_file=arg('bag'), bag_rate=float(arg('bag_rate') or 1.0), bag_topics=arg('bag_topics'),
        record_bag=arg('record_bag'), record_topics=arg('record_topics') or 'sensors',
        render_png=arg('render_png'),
        cameras=arg('cameras') == 'true'))
    return [Node(package=s.package, executable=s.executable, name=s.name,
                 namespace=s.namespace, parameters=[s.parameters],
                 remappings=list(s.remappings), respawn=s.respawn, output='screen',
                 emulate_tty=True)
            for s in specs]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('store', default_value=os.path.join(
            SHARE, 'config', 'stores', 'demo.yaml'),
            description='Store description YAML (layout, load cells, gates, planogram).'),
        DeclareLaunchArgument('mode', default_value='hardware', choices=list(MODES),
                              description='hardware: serial devices from the store description; '
                                          'sim: the simulator provides the devices; replay: '
                                          'sensor topics come from a bag.'),
        DeclareLaunchArgument('namespace', default_value='/store',
                              description='Namespace of every node and store-wide topic.'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(
            SHARE, 'config', 'params', 'store.yaml'),
            description='Per-node parameters (<node>: ros__parameters:).'),
        DeclareLaunchArgument('scenario', default_value='',
                              description='sim mode: scenario file to play.'),
        DeclareLaunchArgument('run_dir', default_value='',
                              description='sim mode: where the simulated devices appear; '
                                          'also where recordings go.'),
        DeclareLaunchArgument('db_path', default_value='',
                              description='Cart database (SQLite). Empty: the cart default.'),
        DeclareLaunchArgument('record', default_value='false', choices=['true', 'false'],
                              description='Add the receipt recorder (ends when all receipts '
                                          'of the scenario are in).'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=['true', 'false'],
                              description='Nodes follow /clock (bag replay).'),
        DeclareLaunchArgument('bag', default_value='',
                              description='replay mode: bag (rosbag2 directory) to play into '
                                          'the graph; its /clock drives every node.'),
        DeclareLaunchArgument('bag_rate', default_value='1.0',
                              description='replay mode: time scale of the bag (2.0: twice as '
                                          'fast).'),
        DeclareLaunchArgument('bag_topics', default_value='',
                              description='replay mode: comma-separated topics to play; empty: '
                                          'every topic of the bag.'),
        DeclareLaunchArgument('record_bag', default_value='',
                              description='Record record_topics to this new bag. Empty: no.'),
        DeclareLaunchArgument('record_topics', default_value='sensors',
                              description='With record_bag: a preset (sensors: plate batches, '
                                          'gate events, ground truth, what a replay rebuilds '
                                          'the graph from; all) or comma-separated topic names '
                                          '(relative ones in the namespace), e.g. '
                                          'sensors,shopper_tracks,fused_shelf_events.'),
        DeclareLaunchArgument('render_png', default_value='',
                              description='Write a top-down PNG of the store markers here. '
                                          'Empty: no.'),
        DeclareLaunchArgument('cameras', default_value='false', choices=['true', 'false'],
                              description='Camera drivers, the detector, the shopper tracker '
                                          'and the fusion node; the cart takes fused shelf '
                                          'events (sim: the simulator renders and streams '
                                          'every camera first).'),
        OpaqueFunction(function=_nodes),
    ])
