"""launch/store.launch.py builds its nodes from the same graph description as the runner.

launch and launch_ros are not installable on this machine, so this test loads the launch file
against minimal stand-ins that record what the file asks of them, then checks the recorded
nodes against build_graph. On a real ROS install, `ros2 launch store_bringup store.launch.py`
uses the real modules.
"""
import importlib.util
import pathlib
import sys
import types

import pytest

from store_bringup.graph import build_graph, GraphOptions
from store_common.description import load_store

ROOT = pathlib.Path(__file__).resolve().parents[3]


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    values: dict = {}

    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return self.values[self.name]


@pytest.fixture
def launch_module(monkeypatch):
    launch = types.ModuleType('launch')
    launch.LaunchDescription = lambda entities: list(entities)
    actions = types.ModuleType('launch.actions')
    actions.DeclareLaunchArgument = _Recorder
    actions.OpaqueFunction = _Recorder
    subs = types.ModuleType('launch.substitutions')
    subs.LaunchConfiguration = _LaunchConfiguration
    launch_ros = types.ModuleType('launch_ros')
    ros_actions = types.ModuleType('launch_ros.actions')
    ros_actions.Node = _Recorder
    ament = types.ModuleType('ament_index_python.packages')
    ament.get_package_share_directory = lambda pkg: str(ROOT)
    for name, mod in {'launch': launch, 'launch.actions': actions,
                      'launch.substitutions': subs, 'launch_ros': launch_ros,
                      'launch_ros.actions': ros_actions,
                      'ament_index_python.packages': ament}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location('store_launch', ROOT / 'launch' /
                                                  'store.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_argument_has_a_description_and_a_default(launch_module):
    ld = launch_module.generate_launch_description()
    args = [e for e in ld if 'description' in e.kwargs]
    assert {a.args[0] for a in args} >= {'store', 'mode', 'params_file', 'scenario', 'run_dir'}
    for a in args:
        assert a.kwargs['description'].strip()
        assert 'default_value' in a.kwargs


@pytest.mark.parametrize('mode, cameras', [('hardware', 'false'), ('sim', 'false'),
                                           ('replay', 'false'), ('hardware', 'true'),
                                           ('sim', 'true')])
def test_launch_nodes_equal_the_graph_description(launch_module, tmp_path, mode, cameras):
    ld = launch_module.generate_launch_description()
    defaults = {e.args[0]: e.kwargs['default_value'] for e in ld if e.args}
    values = dict(defaults, mode=mode, cameras=cameras)
    if mode == 'sim':
        values.update(run_dir=str(tmp_path), scenario=str(tmp_path / 's.yaml'), record='true')
    _LaunchConfiguration.values = values
    opaque = next(e for e in ld if 'function' in e.kwargs)
    nodes = opaque.kwargs['function'](context=None)

    store = load_store(values['store'])
    expected = build_graph(store, GraphOptions(
        mode=mode, params_file=values['params_file'], run_dir=values['run_dir'] or None,
        scenario_file=values['scenario'] or None, record=values['record'] == 'true',
        cameras=cameras == 'true'))
    got = [(n.kwargs['package'], n.kwargs['executable'], n.kwargs['namespace'],
            n.kwargs['name'], n.kwargs['parameters'][0], n.kwargs['remappings']) for n in nodes]
    want = [(s.package, s.executable, s.namespace, s.name, s.parameters, list(s.remappings))
            for s in expected]
    assert got == want
    assert len(got) >= 4
    assert ('fusion' in [g[1] for g in got]) == (cameras == 'true')
