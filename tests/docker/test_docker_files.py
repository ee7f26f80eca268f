"""docker/: the files parse and the image builds what the Makefile builds (no Docker engine here).

What is checked: compose.yaml is valid YAML with the graph service (which serves the review
console); the Dockerfile's instructions are known ones with arguments (continuations joined),
FROM the official ros:kilted image; it installs the same Python requirements files and runs
colcon with the same flags as tools/setup.sh (which `make setup` runs); it builds every package
of src/ (no package selection), and every ROS package a package.xml depends on is in the image
(apt list or the base image).
What is not checked (needs an engine and the network) is in docker/README.md.
"""
import pathlib
import re
import shlex
import xml.etree.ElementTree as ET

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKER = ROOT / 'docker'
INSTRUCTIONS = {'FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT',
                'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK',
                'SHELL', 'MAINTAINER'}
# ROS packages in the ros:kilted (ros-base) image without an explicit apt install
BASE_IMAGE = {'rclpy', 'std_msgs', 'builtin_interfaces', 'geometry_msgs', 'rosidl_default_runtime',
              'rosidl_default_generators', 'ament_cmake', 'ament_index_python', 'rcl_interfaces'}
PIP_OR_APT = {'python3-numpy': 'numpy', 'python3-yaml': 'pyyaml', 'python3-serial': 'pyserial',
              'python3-opencv': 'opencv-python-headless', 'python3-pytest': 'pytest',
              'python3-httpx': 'httpx'}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ''
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith('#')):
            continue
        if buf and stripped.startswith('#'):
            continue
        if stripped.endswith('\\'):
            buf += stripped[:-1] + ' '
            continue
        buf += stripped
        word, _, args = buf.partition(' ')
        out.append((word, args.strip()))
        buf = ''
    assert not buf, 'Dockerfile ends inside a line continuation'
    return out


@pytest.fixture(scope='module')
def instructions():
    return dockerfile_instructions((DOCKER / 'Dockerfile').read_text())


def colcon_flags(command: str) -> set[str]:
    """The flags of the colcon build in a shell command (values joined to their flag)."""
    words = shlex.split(command[command.index('colcon'):].split('&&')[0].replace('\n', ' '))
    flags, i = set(), 0
    while i < len(words):
        w = words[i]
        if w.startswith('--') and i + 1 < len(words) and not words[i + 1].startswith('-') \
                and w not in ('--symlink-install',) and words[i + 1] != 'build':
            flags.add(f'{w} {words[i + 1]}')
            i += 2
            continue
        flags.add(w)
        i += 1
    return flags


def test_dockerfile_parses_and_starts_from_official_kilted(instructions):
    assert instructions, 'empty Dockerfile'
    for word, args in instructions:
        assert word in INSTRUCTIONS, f'unknown instruction {word}'
        assert args, f'{word} without arguments'
    assert instructions[0] == ('FROM', 'ros:kilted')
    entry = [a for w, a in instructions if w == 'ENTRYPOINT']
    assert entry == ['["/entrypoint.sh"]']
    script = (DOCKER / 'entrypoint.sh').read_text()
    assert script.startswith('#!/usr/bin/env bash')
    assert 'source /opt/ros/kilted/setup.bash' in script
    assert 'source /ws/install/setup.bash' in script and 'exec "$@"' in script


def test_same_requirements_and_colcon_flags_as_setup_sh(instructions):
    runs = ' ;; '.join(a for w, a in instructions if w == 'RUN')
    setup = (ROOT / 'tools' / 'setup.sh').read_text()
    # the Python requirements tools/setup.sh installs, except the ROS wheels apt replaces
    setup_reqs = set(re.findall(r'requirements/(\w+)\.txt', setup)) - {'ros'}
    for req in setup_reqs:
        if (ROOT / 'requirements' / f'{req}.txt').exists():
            assert f'-r requirements/{req}.txt' in runs, f'requirements/{req}.txt not installed'
    setup_cmd = ' '.join(line.strip().rstrip('\\') for line in setup.splitlines()
                         if line.strip().startswith(('colcon', '--')))
    docker_cmd = next(a for w, a in instructions if w == 'RUN' and 'colcon' in a and
                      'build' in a.split())
    want = {f for f in colcon_flags(setup_cmd) if 'Python3_EXECUTABLE' not in f}
    got = colcon_flags(docker_cmd)
    assert want - got == set(), f'flags of tools/setup.sh missing in the Dockerfile: {want - got}'
    make = (ROOT / 'Makefile').read_text()
    assert 'bash tools/setup.sh' in make      # make setup/build is tools/setup.sh


def test_every_package_in_src_is_built_with_its_ros_dependencies(instructions):
    copies = [a for w, a in instructions if w == 'COPY']
    for folder in ('src', 'launch', 'config', 'rviz', 'colcon.meta'):
        assert any(c.split()[0] == folder for c in copies), f'{folder} is not copied'
    runs = ' '.join(a for w, a in instructions if w == 'RUN')
    assert '--packages-select' not in runs and '--packages-skip' not in runs
    apt = set(re.findall(r'ros-kilted-([a-z0-9-]+)', runs))
    pip_reqs = (ROOT / 'requirements' / 'py.txt').read_text()
    packages = {}
    for xml in sorted(ROOT.glob('src/*/package.xml')):
        root = ET.parse(xml).getroot()
        packages[root.findtext('name')] = [d.text for d in root if d.tag.endswith('depend')]
    assert len(packages) >= 9
    for name, deps in packages.items():
        for dep in deps:
            if dep in packages or dep in BASE_IMAGE:
                continue
            if dep in PIP_OR_APT:
                assert PIP_OR_APT[dep] in pip_reqs, f'{name}: {dep} not in requirements/py.txt'
                continue
            assert dep.replace('_', '-') in apt, f'{name} needs {dep}: not apt-installed'


def test_compose_file_parses_with_the_graph_serving_the_review_console():
    doc = yaml.safe_load((DOCKER / 'compose.yaml').read_text())
    services = doc['services']
    assert set(services) == {'graph'}
    graph = services['graph']
    assert graph['build']['dockerfile'] == 'docker/Dockerfile'
    assert (DOCKER / graph['build']['context'] / 'docker' / 'Dockerfile').is_file()
    cmd = graph['command']
    assert cmd[:4] == ['ros2', 'launch', 'store_bringup', 'store.launch.py']
    assert any(c.startswith('store:=') for c in cmd)
    assert all(':' in d for d in graph['devices'])
    assert graph['network_mode'] == 'host'
    store = yaml.safe_load((ROOT / 'config' / 'stores' / 'demo.yaml').read_text())['store']
    ports = {c['port'] for c in store['controllers']} | {g['reader']['port']
                                                         for g in store['gates']}
    assert {d.split(':')[1] for d in graph['devices']} == ports
    text = (DOCKER / 'compose.yaml').read_text()
    assert 'PLACEHOLDER' not in text
    # the console comes with the graph's review node; the file says how to reach it
    assert 'review_users' in text and '8080' in text
