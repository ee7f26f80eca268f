"""Fixtures for the tests of tools/ scripts (run as files, not installed as modules)."""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('name')``: tools/name.py imported as a module of its own."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / 'tools' / f'{name}.py')
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return load
