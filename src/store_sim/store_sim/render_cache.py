"""Camera renders done before a run's clocks start, and kept between runs.

Rendering a scenario's camera videos takes minutes on two cores, far longer than any node's
start-up. So ``run_store --mode sim --cameras`` renders (with progress) *before* it starts the
graph, and the simulator node then finds the videos current (:func:`render_is_current`) and
starts its scenario clock at once: no receipt timeout, driver reconnect or watchdog ever counts
render time.

A render is identified by its *input key* (:func:`render_key`): a hash of everything that
decides its pixels, namely the parsed store description and scenario (so an edit to an included
file counts, a touched but unchanged file does not), the frame rate, the cameras, the lighting
variant, the seed and the renderer's own source code. Finished renders are kept in a cache
directory (``$STORE_RENDER_CACHE``, default ``~/.cache/walkout_store/renders``) under their key
and linked into a run's ``cameras/`` directory, so the second ``make demo`` does not render
again. The cache keeps the ``keep`` most recently used renders.

Never imports rclpy.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import threading
import time

from store_common.description import load_store

CACHE_ENV = 'STORE_RENDER_CACHE'
# the modules whose code decides a render's pixels and labels
_RENDER_SOURCES = ('render.py', 'render_scenario.py', 'physics.py', 'scenario.py',
                   'walkways.py', 'generator.py')


def default_cache_dir() -> pathlib.Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return pathlib.Path(env)
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return pathlib.Path(base) / 'walkout_store' / 'renders'


def _source_digest() -> str:
    here = pathlib.Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _RENDER_SOURCES:
        p = here / name
        if p.exists():
            h.update(name.encode() + b'\0' + p.read_bytes())
    return h.hexdigest()


def render_key(store_file: str, scenario_file: str, fps: float, cameras: list[str],
               lighting_variant: int = 0, seed: int | None = None, t0_s: float = 0.0) -> str:
    """The input key of a render (hex, 24 characters)."""
    from store_sim.scenario import load_scenario
    store = load_store(store_file)
    scenario = load_scenario(scenario_file, store)
    # what the files say, not how their path was spelled
    store = dataclasses.replace(store, path=str(pathlib.Path(store_file).resolve()))
    h = hashlib.sha256()
    for part in (repr(store), repr(scenario), repr(float(fps)), repr(list(cameras)),
                 repr(int(lighting_variant)), repr(seed), repr(float(t0_s)), _source_digest()):
        h.update(part.encode() + b'\0')
    return h.hexdigest()[:24]


def render_files(meta: dict) -> list[str]:
    """The files a complete render directory holds besides ``render.json``."""
    names = []
    for cid in meta.get('cameras', []):
        names += [f'{cid}.avi', f'{cid}.jsonl']
    return names


def is_complete(render_dir: pathlib.Path, key: str) -> bool:
    """True when ``render_dir`` holds a complete render whose input key is ``key``."""
    meta_file = pathlib.Path(render_dir) / 'render.json'
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get('input_key') != key:
        return False
    return all((pathlib.Path(render_dir) / n).is_file() for n in render_files(meta))


def _link_or_copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    tmp = dst.with_name(f'.{dst.name}.tmp')
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:     # another file system, or links not allowed
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _copy_render(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Copy a complete render, ``render.json`` last (its presence marks completeness)."""
    meta = json.loads((src / 'render.json').read_text())
    dst.mkdir(parents=True, exist_ok=True)
    (dst / 'render.json').unlink(missing_ok=True)
    for name in render_files(meta):
        _link_or_copy(src / name, dst / name)
    _link_or_copy(src / 'render.json', dst / 'render.json')


def _prune(cache: pathlib.Path, keep: int) -> None:
    entries = sorted((p for p in cache.iterdir() if p.is_dir()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)


class _Progress:
    """Reports the frames rendered so far from the renderers' progress files."""

    def __init__(self, out: pathlib.Path, cameras: list[str], total_frames: int, log,
                 period_s: float = 15.0):
        self.out, self.cameras, self.total, self.log = out, cameras, total_frames, log
        self.period_s = period_s
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True, name='render-progress')

    def frames_done(self) -> int:
        per_camera = self.total // max(1, len(self.cameras))
        done = 0
        for cid in self.cameras:
            try:
                done += int((self.out / f'.{cid}.progress').read_text() or 0)
            except (OSError, ValueError):   # not started, or finished (its video is there)
                done += per_camera if (self.out / f'{cid}.avi').exists() else 0
        return done

    def _run(self) -> None:
        while not self.stop.wait(self.period_s):
            done = self.frames_done()
            if done <= 0:
                continue
            elapsed = time.monotonic() - self.started
            left = elapsed * (self.total - done) / done
            self.log(f'rendering: {done}/{self.total} frames ({100 * done / self.total:.0f} %), '
                     f'about {left:.0f} s left')

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(1.0)


def ensure_render(store_file: str, scenario_file: str, render_dir: str | pathlib.Path,
                  fps: float, cameras: list[str] | None = None, jobs: int = 2,
                  cache_dir: str | pathlib.Path | None = None, keep: int = 6,
                  log=print) -> str:
    """Make ``render_dir`` hold a complete, current render; returns how: ``'current'`` (it
    already did), ``'cache'`` (linked from the cache) or ``'rendered'``. ``cache_dir=''``
    disables the cache."""
    from store_sim.render_scenario import frame_times, render_scenario
    from store_sim.scenario import load_scenario
    store = load_store(store_file)
    ids = list(cameras or [c.id for c in store.cameras])
    key = render_key(store_file, scenario_file, fps, ids)
    out = pathlib.Path(render_dir)
    if is_complete(out, key):
        return 'current'
    cache = default_cache_dir() if cache_dir is None else (
        pathlib.Path(cache_dir) if cache_dir else None)
    cached = cache / key if cache else None
    if cached is not None and is_complete(cached, key):
        _copy_render(cached, out)
        os.utime(cached)
        log(f'camera videos of {len(ids)} cameras taken from the render cache {cached}')
        return 'cache'
    scenario = load_scenario(scenario_file, store)
    total = len(frame_times(scenario.duration_s + 1.0, fps)) * len(ids)
    log(f'rendering {len(ids)} camera videos ({total} frames at {fps:g} fps, {jobs} jobs) '
        f'into {out} before any clock starts')
    for cid in ids:     # a stale video must not count as progress
        (out / f'{cid}.avi').unlink(missing_ok=True)
    start = time.monotonic()
    with _Progress(out, ids, total, log):
        render_scenario(store_file, scenario_file, str(out), fps, ids, jobs=jobs,
                        input_key=key)
    log(f'rendered {total} frames in {time.monotonic() - start:.0f} s')
    if cached is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f'.{key}.tmp'
            shutil.rmtree(tmp, ignore_errors=True)
            _copy_render(out, tmp)
            shutil.rmtree(cached, ignore_errors=True)
            os.replace(tmp, cached)
            _prune(cache, keep)
        except OSError as exc:      # a full or read-only cache costs the next run a render
            log(f'render cache {cache} not updated: {exc}')
    return 'rendered'
