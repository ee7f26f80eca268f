"""Fixtures for graph tests: isolated ROS domains and a simulated store run through the runner."""
from __future__ import annotations

import json
import os
import pathlib
import random
import sys
from dataclasses import dataclass, field

import pytest

from store_bringup.graph import build_graph, GraphOptions
from store_bringup.runner import Runner
from store_common.description import load_store

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'


@pytest.fixture
def ros_env(monkeypatch):
    """A private ROS domain on loopback only, for this test and the processes it starts."""
    domain = str(random.Random(os.getpid() ^ id(monkeypatch)).randint(1, 100))
    monkeypatch.setenv('ROS_DOMAIN_ID', domain)
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    monkeypatch.setenv('ROS_LOCALHOST_ONLY', '0')
    return dict(os.environ)


def read_jsonl(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class RunResult:
    run_dir: pathlib.Path
    exit_code: int | None
    receipts: list[dict] = field(default_factory=list)
    review_requests: list[dict] = field(default_factory=list)
    shelf_events: list[dict] = field(default_factory=list)

    def latest_receipts(self) -> dict[str, dict]:
        """shopper id -> the highest revision of that shopper's receipt."""
        out: dict[str, dict] = {}
        for r in self.receipts:
            prev = out.get(r['shopper_id'])
            if prev is None or r['revision'] > prev['revision']:
                out[r['shopper_id']] = r
        return out

    def log(self, label: str) -> str:
        path = self.run_dir / 'logs' / f'{label}.log'
        return path.read_text() if path.exists() else ''


@pytest.fixture
def run_sim_store(tmp_path, ros_env):
    """Run the simulated store on a scenario through the real node graph (one process a node).

    ``during(runner)`` is called once the graph is up, for tests that crash nodes mid-run.
    """
    def run(scenario: str | pathlib.Path, *, overrides: dict | None = None,
            timeout_s: float = 240.0, during=None, name: str = 'run') -> RunResult:
        run_dir = tmp_path / name
        store = load_store(DEMO_STORE)
        specs = build_graph(store, GraphOptions(
            mode='sim', params_file=str(PARAMS), run_dir=str(run_dir),
            scenario_file=str(scenario), record=True, overrides=overrides or {}))
        runner = Runner(specs, run_dir, out=sys.stdout, env=ros_env)
        code = None
        try:
            runner.start()
            if during is not None:
                during(runner)
            code = runner.wait(timeout_s=timeout_s)
        finally:
            runner.stop()
        return RunResult(run_dir=run_dir, exit_code=code,
                         receipts=read_jsonl(run_dir / 'receipts.jsonl'),
                         review_requests=read_jsonl(run_dir / 'review_requests.jsonl'),
                         shelf_events=read_jsonl(run_dir / 'shelf_events.jsonl'))
    return run
