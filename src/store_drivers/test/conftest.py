"""Shared fixtures: the demo store description and pseudo-terminals behind a symlink."""
import os
import pathlib
import tty

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
DEMO_STORE = REPO / 'config' / 'stores' / 'demo.yaml'


@pytest.fixture(scope='session')
def repo_root():
    return REPO


@pytest.fixture(scope='session')
def demo_store_path():
    return DEMO_STORE


@pytest.fixture(scope='session')
def demo_store():
    from store_common.description import load_store
    return load_store(DEMO_STORE)


class Pty:
    """A pseudo-terminal whose slave is reachable through ``link`` (like /dev/store/pc_g1)."""

    def __init__(self, link: pathlib.Path):
        self.link = link
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)          # no echo, no CR/LF translation before the driver opens it
        self.slave_path = os.ttyname(self.slave)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.slave_path)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self, remove_link: bool = True) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if remove_link and self.link.is_symlink():
            self.link.unlink()


@pytest.fixture
def make_pty(tmp_path):
    made = []

    def make(name='dev0'):
        p = Pty(tmp_path / name)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close(remove_link=False)
