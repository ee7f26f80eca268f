"""Fixtures for graph tests: isolated ROS domains and a simulated store run through the runner."""
from __future__ import annotations

import json
import os
import pathlib
import random
import sys
import time
from dataclasses import dataclass, field

import pytest
import yaml

from store_bringup.graph import build_graph, GraphOptions
from store_bringup.runner import prerender, Runner
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
            timeout_s: float = 240.0, during=None, name: str = 'run',
            cameras: bool = False) -> RunResult:
        run_dir = tmp_path / name
        store = load_store(DEMO_STORE)
        merged = {'review': {'port': 0}}     # a free console port: 8080 may be taken
        for node, values in (overrides or {}).items():
            merged.setdefault(node, {}).update(values)
        specs = build_graph(store, GraphOptions(
            mode='sim', params_file=str(PARAMS), run_dir=str(run_dir),
            scenario_file=str(scenario), record=True, overrides=merged, cameras=cameras))
        prerender(specs, print)     # cameras: rendered (or cached) before any clock starts
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


# --- the reviewer's side: a browser, a graph to answer, and waiting on it ----------------------
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium context (Debian's build driven by Playwright); skips without one."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip('chromium not installed (tools/setup.sh installs it)')
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / 'profile'), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS)
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def wait_for():
    """``wait_for(what, check, timeout_s, runner)``: ``check()``'s first truthy value; fails
    when the graph ends or the time runs out first."""
    def wait(what, check, timeout_s, runner):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            code = runner.check()
            assert code is None, f'graph ended with {code} while waiting for {what}'
            time.sleep(0.3)
        raise AssertionError(f'timed out after {timeout_s} s waiting for {what}')
    return wait


@pytest.fixture
def overlap_graph(tmp_path, ros_env):
    """The demo store with two shoppers inside while one takes a can (an ambiguous-shopper
    review, pending on both receipts), reviewer ``alice`` (password ``alice-password``), the
    console on a free port. ``overlap_graph(overrides)`` returns the (not yet started) runner
    and the run folder; the runner is stopped after the test."""
    from store_review.auth import Auth
    from store_review.store import ReviewStore
    doc = {'scenario': {'store': 'demo_store', 'seed': 5, 'duration_s': 16.0, 'shoppers': [
        {'id': 'acct-a', 'enter_s': 1.0, 'exit_s': 10.0, 'actions': [
            {'t_s': 6.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330',
             'quantity': 1}]},
        {'id': 'acct-b', 'enter_s': 3.0, 'exit_s': 12.0, 'actions': []}]}}
    scenario = tmp_path / 'overlap.yaml'
    scenario.write_text(yaml.safe_dump(doc))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    db = ReviewStore(run_dir / 'review.sqlite')
    Auth(db).add_user('alice', 'reviewer', 'alice-password', time.time_ns())
    db.close()
    runners = []

    def make(overrides: dict | None = None) -> tuple[Runner, pathlib.Path]:
        merged = {'review': {'port': 0}, 'receipt_recorder': {'settle_s': 300.0}}
        for node, params in (overrides or {}).items():
            merged.setdefault(node, {}).update(params)
        specs = build_graph(load_store(DEMO_STORE), GraphOptions(
            mode='sim', params_file=str(PARAMS), run_dir=str(run_dir),
            scenario_file=str(scenario), record=True, overrides=merged))
        runners.append(Runner(specs, run_dir, out=sys.stdout, env=ros_env))
        return runners[-1], run_dir
    yield make
    for r in runners:
        r.stop()
