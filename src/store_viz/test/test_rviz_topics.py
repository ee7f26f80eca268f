"""Every topic the rviz configs display is one the store's graph publishes, and the tools of
store_viz are on the PATH that tools/env.sh sets."""
import os
import pathlib
import re
import subprocess

import pytest
import yaml

from store_bringup.graph import build_graph, GraphOptions
from store_common.description import load_store

ROOT = pathlib.Path(__file__).resolve().parents[3]
PUBLISHER = re.compile(r"create_publisher\(\s*\w+,\s*'([^'{}]+)'")


def entry_modules(package: str) -> dict[str, pathlib.Path]:
    """executable -> source file of its module, from the package's setup.py entry points."""
    text = (ROOT / 'src' / package / 'setup.py').read_text()
    out = {}
    for name, module in re.findall(r"'(\w+)\s*=\s*([\w.]+):\w+'", text):
        out[name] = ROOT / 'src' / package / (module.replace('.', '/') + '.py')
    return out


def resolve(namespace: str, topic: str) -> str:
    return topic if topic.startswith('/') else f'{namespace.rstrip("/")}/{topic}'


def graph_topics(store_path: pathlib.Path, tmp_path) -> set[str]:
    """The topics the sim graph with cameras publishes: each node's ``create_publisher`` names
    (read from its module's source) under the node's namespace."""
    specs = build_graph(load_store(store_path), GraphOptions(
        mode='sim', params_file=str(ROOT / 'config' / 'params' / 'store.yaml'),
        run_dir=str(tmp_path), scenario_file=str(ROOT / 'config' / 'scenarios' / 'demo.yaml'),
        cameras=True, render_png=str(tmp_path / 'x.png')))
    topics = set()
    for s in specs:
        src = entry_modules(s.package).get(s.executable)
        if src is None or not src.is_file():
            continue
        for t in PUBLISHER.findall(src.read_text()):
            topics.add(resolve(s.namespace, t))
    return topics


def rviz_topics(path: pathlib.Path) -> list[tuple[str, str]]:
    doc = yaml.safe_load(path.read_text())
    out = []

    def walk(displays):
        for d in displays or ():
            topic = (d.get('Topic') or {}).get('Value') if isinstance(d.get('Topic'), dict) \
                else d.get('Topic')
            if topic:
                out.append((d.get('Name', '?'), topic))
            walk(d.get('Displays'))
    walk(doc['Visualization Manager']['Displays'])
    return out


@pytest.mark.parametrize('config', sorted((ROOT / 'rviz').glob('*.rviz')), ids=lambda p: p.name)
def test_every_rviz_topic_is_published_by_the_graph(config, tmp_path):
    published = graph_topics(ROOT / 'config' / 'stores' / 'demo.yaml', tmp_path)
    # the table is read from the sources: it knows the markers and the camera images
    assert '/store/markers/state' in published and '/store/cameras/cam1/image_raw' in published
    shown = rviz_topics(config)
    assert shown, f'{config} displays no topic'
    missing = [(name, t) for name, t in shown if t not in published]
    assert not missing, f'{config.name}: displays of topics nobody publishes: {missing}'


def test_store_viz_tools_are_on_the_path_of_env_sh():
    if not (ROOT / 'install' / 'store_viz' / 'lib' / 'store_viz' / 'render_markers').exists():
        pytest.skip('workspace not built (make setup)')
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV',)}
    out = subprocess.run(['bash', '-c', '. tools/env.sh && command -v render_markers'],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith('/render_markers'), out.stderr
