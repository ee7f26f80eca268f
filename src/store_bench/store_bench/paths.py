"""Where the repository is, for the bench tools' default paths (config/, out/, tests/data/).

The tools are installed console scripts; colcon's ``--symlink-install`` links their modules
into build/, so ``pathlib.Path(__file__).resolve()`` lands back in ``src/store_bench`` of the
checkout, but a plain install copies them somewhere else. :func:`repo_root` therefore tries, in
order: the ``STORE_ROOT`` environment variable (an explicit choice: an error when it does not
name a checkout), the folders above this module's resolved path, ``STORE_WS`` (set by
``tools/env.sh``), and the folders above the working directory. A checkout is a folder holding
``colcon.meta`` and ``config/stores/``. Never imports rclpy.
"""
from __future__ import annotations

import os
import pathlib


class RepoRootNotFound(RuntimeError):
    """No checkout of the store found; the message says how to name one."""


def is_repo_root(path: pathlib.Path) -> bool:
    """Whether ``path`` is a checkout of the store (colcon.meta beside config/stores/)."""
    return (path / 'colcon.meta').is_file() and (path / 'config' / 'stores').is_dir()


def _walk_up(start: pathlib.Path) -> pathlib.Path | None:
    for p in (start, *start.parents):
        if is_repo_root(p):
            return p
    return None


def repo_root(module_file: str | os.PathLike | None = None,
              environ: dict | None = None, cwd: pathlib.Path | None = None) -> pathlib.Path:
    """The repository root, found as the module docstring says; :class:`RepoRootNotFound` if none.

    ``module_file``, ``environ`` and ``cwd`` default to this module, ``os.environ`` and the
    working directory (tests pass others).
    """
    env = os.environ if environ is None else environ
    explicit = env.get('STORE_ROOT', '')
    if explicit:
        p = pathlib.Path(explicit).expanduser().resolve()
        if not is_repo_root(p):
            raise RepoRootNotFound(f'STORE_ROOT={explicit} is not a checkout of the store '
                                   '(no colcon.meta and config/stores/ there)')
        return p
    here = pathlib.Path(module_file if module_file is not None else __file__).resolve().parent
    candidates = [here]
    if env.get('STORE_WS'):
        candidates.append(pathlib.Path(env['STORE_WS']).expanduser().resolve())
    candidates.append((cwd if cwd is not None else pathlib.Path.cwd()).resolve())
    for start in candidates:
        found = _walk_up(start)
        if found is not None:
            return found
    raise RepoRootNotFound(
        'cannot find the store checkout (a folder with colcon.meta and config/stores/) above '
        f'{here}, STORE_WS or the working directory: set STORE_ROOT=/path/to/checkout, or run '
        'from inside the checkout')


def root_or_exit() -> pathlib.Path:
    """:func:`repo_root` for a tool's ``main``: exits with the reason when there is none."""
    try:
        return repo_root()
    except RepoRootNotFound as e:
        raise SystemExit(f'error: {e}') from None
