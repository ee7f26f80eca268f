"""Shared fixtures: the demo store description from the workspace config."""
import pathlib

import pytest

from store_common.description import load_store

DEMO_STORE = pathlib.Path(__file__).resolve().parents[3] / 'config' / 'stores' / 'demo.yaml'


@pytest.fixture(scope='module')
def store():
    return load_store(DEMO_STORE)
