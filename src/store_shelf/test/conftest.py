"""Shared fixtures: the demo store description (read-only) from the workspace config."""
import pathlib
import sys

import pytest

from store_common.description import load_store

# the tests import their signal generator (shelf_synth) from this folder; pytest runs with
# --import-mode=importlib, which does not put it on sys.path
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

DEMO_STORE = pathlib.Path(__file__).resolve().parents[3] / 'config' / 'stores' / 'demo.yaml'


@pytest.fixture(scope='session')
def store():
    return load_store(DEMO_STORE)
