"""The store description: layout, load cells, gates, planogram and product catalog.

Loaded from ``config/stores/<store>.yaml`` (which names its catalog file) and validated on load.
Every error is a :class:`StoreConfigError` naming the file, the field path (for example
``store.gondolas[1].shelves[0].plates[2].load_cell.channel``) and what is wrong.

This module never imports rclpy: the simulator, the graph builder, the launch file and every node
use the same model.
"""
from __future__ import annotations

import difflib
import math
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any


from store_common import plate_protocol as proto
from store_common import strict_yaml
from store_common.errors import FileFieldError

ID_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
SKU_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
ADC_MIN, ADC_MAX = -(1 << 23), (1 << 23) - 1

# One tolerance for every geometric check of a layout [m]: coordinates come from CAD exports and
# float32 tools (0.9144 m in float32 is 0.91439998 m), so a plate that ends 7.5e-9 m past its
# gondola fits; a micrometre is far below anything a shelf can be built to.
LAYOUT_TOL_M = 1e-6

# the keys each level of a store or catalog file may have (anything else is refused: a typo
# such as ``sample_rate`` would otherwise fall back to the default without a word)
STORE_KEYS = ('id', 'name', 'frame_id', 'catalog', 'size_m', 'gates', 'controllers', 'gondolas',
              'planogram', 'cameras')
GATE_KEYS = ('id', 'kind', 'zone', 'reader')
ZONE_KEYS = ('x_min', 'x_max', 'y_min', 'y_max')
CONTROLLER_KEYS = ('id', 'port', 'baud', 'sample_rate_hz', 'n_channels')
GONDOLA_KEYS = ('id', 'pose', 'size_m', 'shelves')
PLATE_KEYS = ('id', 'x_m', 'y_m', 'size_m', 'load_cell')
LOAD_CELL_KEYS = ('controller', 'channel', 'tare_offset_counts', 'grams_per_count',
                  'capacity_grams')
PLANOGRAM_KEYS = ('plate', 'sku', 'capacity_units', 'initial_units')
CAMERA_KEYS = ('id', 'calibration', 'source', 'fps', 'width', 'height')
PRODUCT_KEYS = ('sku', 'name', 'price_cents', 'unit_grams', 'unit_grams_sd', 'look')


class StoreConfigError(FileFieldError):
    """A store or catalog file is invalid. ``str()`` reads ``file: field.path: what is wrong``."""


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price_cents: int
    unit_grams: float
    unit_grams_sd: float
    look: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Catalog:
    currency: str
    products: dict[str, Product]
    path: str = ''

    def __contains__(self, sku: str) -> bool:
        return sku in self.products

    def __getitem__(self, sku: str) -> Product:
        return self.products[sku]


@dataclass(frozen=True)
class LoadCell:
    controller_id: str
    channel: int
    tare_offset_counts: int
    grams_per_count: float
    capacity_grams: float


@dataclass(frozen=True)
class Plate:
    id: str              # globally unique: "<gondola>.<shelf>.<plate>"
    gondola_id: str
    shelf_id: str        # globally unique: "<gondola>.<shelf>"
    x_m: float           # plate centre along the shelf, relative to the shelf origin [m]
    y_m: float           # plate centre across the shelf (depth), relative to the shelf origin [m]
    size_x_m: float
    size_y_m: float
    load_cell: LoadCell
    center_store: tuple[float, float, float]  # plate centre in the store frame [m]
    yaw_store: float                           # plate orientation in the store frame [rad]

    @property
    def frame_id(self) -> str:
        return 'plate_' + self.id.replace('.', '_')


@dataclass(frozen=True)
class Shelf:
    id: str
    gondola_id: str
    z_m: float           # shelf surface height above the floor [m]
    plates: tuple[Plate, ...]


@dataclass(frozen=True)
class Gondola:
    id: str
    x_m: float
    y_m: float
    yaw_rad: float
    size_m: tuple[float, float, float]
    shelves: tuple[Shelf, ...]

    @property
    def frame_id(self) -> str:
        return 'gondola_' + self.id


@dataclass(frozen=True)
class Zone:
    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def contains(self, x: float, y: float) -> bool:
        return self.x_min <= x <= self.x_max and self.y_min <= y <= self.y_max


@dataclass(frozen=True)
class SerialPort:
    port: str
    baud: int


@dataclass(frozen=True)
class Gate:
    id: str
    kind: str            # "entrance" or "exit"
    zone: Zone
    reader: SerialPort

    @property
    def frame_id(self) -> str:
        return 'gate_' + self.id


@dataclass(frozen=True)
class Controller:
    id: str
    port: str
    baud: int
    sample_rate_hz: float
    n_channels: int


@dataclass(frozen=True)
class PlanogramEntry:
    plate_id: str
    sku: str
    capacity_units: int
    initial_units: int


@dataclass(frozen=True)
class Camera:
    """One camera of the store: where its images come from and its calibration."""
    id: str
    calibration_file: str      # absolute path of the calibration YAML
    source: int | str          # device index, video file path or stream URL (hardware mode)
    fps: float                 # frames per second the driver delivers [Hz]
    width: int                 # image width [px] (equals the calibration's)
    height: int                # image height [px]
    model: Any = field(compare=False, repr=False)   # store_common.camera.CameraModel

    @property
    def frame_id(self) -> str:
        return f'camera_{self.id}_optical'


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    frame_id: str
    size_m: tuple[float, float]
    gates: tuple[Gate, ...]
    controllers: tuple[Controller, ...]
    gondolas: tuple[Gondola, ...]
    planogram: dict[str, PlanogramEntry]
    catalog: Catalog
    path: str = ''
    cameras: tuple[Camera, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    # --- lookups -----------------------------------------------------------------------------
    @property
    def plates(self) -> dict[str, Plate]:
        return {p.id: p for g in self.gondolas for s in g.shelves for p in s.plates}

    def plate(self, plate_id: str) -> Plate:
        try:
            return self.plates[plate_id]
        except KeyError:
            raise KeyError(f'unknown plate {plate_id!r} in store {self.id!r}') from None

    def controller(self, controller_id: str) -> Controller:
        for c in self.controllers:
            if c.id == controller_id:
                return c
        raise KeyError(f'unknown controller {controller_id!r} in store {self.id!r}')

    def gondola(self, gondola_id: str) -> Gondola:
        for g in self.gondolas:
            if g.id == gondola_id:
                return g
        raise KeyError(f'unknown gondola {gondola_id!r} in store {self.id!r}')

    def gate(self, gate_id: str) -> Gate:
        for g in self.gates:
            if g.id == gate_id:
                return g
        raise KeyError(f'unknown gate {gate_id!r} in store {self.id!r}')

    def camera(self, camera_id: str) -> Camera:
        for c in self.cameras:
            if c.id == camera_id:
                return c
        raise KeyError(f'unknown camera {camera_id!r} in store {self.id!r}')

    def plates_of_controller(self, controller_id: str) -> list[Plate]:
        return sorted((p for p in self.plates.values()
                       if p.load_cell.controller_id == controller_id),
                      key=lambda p: p.load_cell.channel)

    def plates_of_gondola(self, gondola_id: str) -> list[Plate]:
        return [p for s in self.gondola(gondola_id).shelves for p in s.plates]

    def controllers_of_gondola(self, gondola_id: str) -> list[Controller]:
        ids = {p.load_cell.controller_id for p in self.plates_of_gondola(gondola_id)}
        return [c for c in self.controllers if c.id in ids]

    def sku_of_plate(self, plate_id: str) -> str | None:
        entry = self.planogram.get(plate_id)
        return entry.sku if entry else None

    def adjacent_plates(self, plate_id: str, gap_m: float = 0.03) -> list[str]:
        """Plates on the same shelf whose edge is within ``gap_m`` of this plate's edge.

        A product can rest across two such plates and split its weight between them.
        """
        plate = self.plate(plate_id)
        out = []
        for s in self.gondola(plate.gondola_id).shelves:
            if s.id != plate.shelf_id:
                continue
            for other in s.plates:
                if other.id == plate.id:
                    continue
                gap_x = abs(other.x_m - plate.x_m) - (other.size_x_m + plate.size_x_m) / 2
                gap_y = abs(other.y_m - plate.y_m) - (other.size_y_m + plate.size_y_m) / 2
                if gap_x <= gap_m and gap_y <= gap_m:
                    out.append(other.id)
        return out


# --- loading ----------------------------------------------------------------------------------
class _Ctx:
    """Carries the file name so every check can raise a precise error."""

    def __init__(self, file: str | pathlib.Path, doc: strict_yaml.Document | None = None):
        self.file = str(file)
        self.doc = doc

    def fail(self, path: str, message: str) -> StoreConfigError:
        return StoreConfigError(self.file, path, message)

    def keys(self, node: dict, path: str, known: tuple[str, ...]) -> None:
        """Refuse a key of ``node`` that the schema does not know (a typo would otherwise fall
        back to the default silently), naming its line."""
        for key in node:
            if key in known:
                continue
            line = self.doc.key_line(node, key) if self.doc is not None else 0
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ''
            raise self.fail(f'{path}.{key}' if path else str(key),
                            f'unknown key {key!r}' + (f' at line {line}' if line else '')
                            + f' ({hint}known here: {", ".join(known)})')

    def mapping(self, node: Any, path: str) -> dict:
        if not isinstance(node, dict):
            raise self.fail(path, f'expected a mapping, got {_kind(node)}')
        return node

    def seq(self, node: Any, path: str, min_len: int = 0) -> list:
        if not isinstance(node, list):
            raise self.fail(path, f'expected a list, got {_kind(node)}')
        if len(node) < min_len:
            raise self.fail(path, f'expected at least {min_len} entries, got {len(node)}')
        return node

    def get(self, node: dict, key: str, path: str, default: Any = ...) -> Any:
        if key not in node:
            if default is ...:
                raise self.fail(f'{path}.{key}' if path else key, 'missing required field')
            return default
        return node[key]

    def num(self, node: dict, key: str, path: str, default: Any = ..., *,
            lo: float | None = None, hi: float | None = None, integer: bool = False,
            lo_open: bool = False) -> float:
        p = f'{path}.{key}'
        v = self.get(node, key, path, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(p, f'expected a number, got {_kind(v)} {v!r}')
        if integer and (not float(v).is_integer()):
            raise self.fail(p, f'expected an integer, got {v!r}')
        if not math.isfinite(v):
            raise self.fail(p, f'expected a finite number, got {v!r}')
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise self.fail(p, f'must be {">" if lo_open else ">="} {lo}, got {v!r}')
        if hi is not None and v > hi:
            raise self.fail(p, f'must be <= {hi}, got {v!r}')
        return int(v) if integer else float(v)

    def text(self, node: dict, key: str, path: str, default: Any = ..., *,
             pattern: re.Pattern | None = None, choices: tuple[str, ...] = ()) -> str:
        p = f'{path}.{key}'
        v = self.get(node, key, path, default)
        if not isinstance(v, str) or not v:
            raise self.fail(p, f'expected a non-empty string, got {_kind(v)} {v!r}')
        if pattern is not None and not pattern.match(v):
            raise self.fail(p, f'{v!r} does not match {pattern.pattern}')
        if choices and v not in choices:
            raise self.fail(p, f'{v!r} is not one of {", ".join(choices)}')
        return v


def _m(v: float) -> str:
    """A length with enough digits that two lengths that differ by more than LAYOUT_TOL_M
    never print alike."""
    return f'{v:.10g}'


def beyond(v: float, lo: float, hi: float, tol_m: float = LAYOUT_TOL_M) -> str:
    """'' when ``lo - tol_m <= v <= hi + tol_m``, else how far outside, e.g.
    ``0.9144100000 m > 0.9144 m by 1e-05 m``."""
    if v > hi + tol_m:
        return f'{_m(v)} m > {_m(hi)} m by {v - hi:.2g} m'
    if v < lo - tol_m:
        return f'{_m(v)} m < {_m(lo)} m by {lo - v:.2g} m'
    return ''


def _kind(v: Any) -> str:
    return {dict: 'a mapping', list: 'a list', str: 'a string', type(None): 'nothing'}.get(
        type(v), type(v).__name__)


def _read_yaml(path: pathlib.Path) -> strict_yaml.Document:
    """Read a store or catalog file strictly: duplicate keys, nesting deeper than
    ``strict_yaml.MAX_DEPTH`` and bytes that are not UTF-8 are errors naming file and line."""
    if not path.is_file():
        raise StoreConfigError(path, '', 'file not found')
    try:
        return strict_yaml.load_file(path)
    except OSError as exc:
        raise StoreConfigError(path, '', f'cannot read: {exc.strerror or exc}') from None
    except strict_yaml.YamlError as exc:
        raise StoreConfigError(path, '', exc.where_message()) from None


def load_catalog(path: str | pathlib.Path) -> Catalog:
    path = pathlib.Path(path)
    read = _read_yaml(path)
    ctx = _Ctx(path, read)
    doc = ctx.mapping(read.data, '')
    ctx.keys(doc, '', ('catalog',))
    root = ctx.mapping(ctx.get(doc, 'catalog', ''), 'catalog')
    ctx.keys(root, 'catalog', ('currency', 'products'))
    currency = ctx.text(root, 'currency', 'catalog', pattern=re.compile(r'^[A-Z]{3}$'))
    products: dict[str, Product] = {}
    for i, item in enumerate(ctx.seq(ctx.get(root, 'products', 'catalog'), 'catalog.products', 1)):
        p = f'catalog.products[{i}]'
        item = ctx.mapping(item, p)
        ctx.keys(item, p, PRODUCT_KEYS)
        sku = ctx.text(item, 'sku', p, pattern=SKU_RE)
        if sku in products:
            raise ctx.fail(f'{p}.sku', f'duplicate sku {sku!r}')
        look = item.get('look', {})
        ctx.mapping(look, f'{p}.look')
        products[sku] = Product(
            sku=sku,
            name=ctx.text(item, 'name', p),
            price_cents=ctx.num(item, 'price_cents', p, lo=0, integer=True),
            unit_grams=ctx.num(item, 'unit_grams', p, lo=0, lo_open=True),
            unit_grams_sd=ctx.num(item, 'unit_grams_sd', p, lo=0),
            look=look,
        )
    return Catalog(currency=currency, products=products, path=str(path))


def load_store(path: str | pathlib.Path, catalog_path: str | pathlib.Path | None = None) -> Store:
    """Load and validate a store description and the catalog it names.

    ``catalog_path`` overrides the store file's ``store.catalog`` (resolved relative to the store
    file). Raises :class:`StoreConfigError` on the first problem found.
    """
    path = pathlib.Path(path)
    read = _read_yaml(path)
    ctx = _Ctx(path, read)
    doc = ctx.mapping(read.data, '')
    ctx.keys(doc, '', ('store',))
    root = ctx.mapping(ctx.get(doc, 'store', ''), 'store')
    sp = 'store'
    ctx.keys(root, sp, STORE_KEYS)
    store_id = ctx.text(root, 'id', sp, pattern=ID_RE)
    if catalog_path is None:
        rel = ctx.text(root, 'catalog', sp)
        catalog_path = (path.parent / rel).resolve()
    catalog = load_catalog(catalog_path)

    size = ctx.mapping(ctx.get(root, 'size_m', sp), f'{sp}.size_m')
    ctx.keys(size, f'{sp}.size_m', ('x', 'y'))
    size_m = (ctx.num(size, 'x', f'{sp}.size_m', lo=0, lo_open=True),
              ctx.num(size, 'y', f'{sp}.size_m', lo=0, lo_open=True))

    def in_store(x: float, y: float, p: str) -> None:
        checks = (('x', beyond(x, 0.0, size_m[0])), ('y', beyond(y, 0.0, size_m[1])))
        out = [f'{axis} {why}' for axis, why in checks if why]
        if out:
            raise ctx.fail(p, f'({_m(x)}, {_m(y)}) m lies outside the store '
                              f'(0..{_m(size_m[0])} x 0..{_m(size_m[1])} m): {"; ".join(out)}')

    # controllers
    controllers: list[Controller] = []
    for i, c in enumerate(ctx.seq(ctx.get(root, 'controllers', sp), f'{sp}.controllers', 1)):
        p = f'{sp}.controllers[{i}]'
        c = ctx.mapping(c, p)
        ctx.keys(c, p, CONTROLLER_KEYS)
        cid = ctx.text(c, 'id', p, pattern=ID_RE)
        if any(x.id == cid for x in controllers):
            raise ctx.fail(f'{p}.id', f'duplicate controller id {cid!r}')
        ctrl = Controller(
            id=cid, port=ctx.text(c, 'port', p), baud=ctx.num(c, 'baud', p, 115200, lo=1200,
                                                              integer=True),
            sample_rate_hz=ctx.num(c, 'sample_rate_hz', p, 40.0, lo=10, hi=80),
            n_channels=ctx.num(c, 'n_channels', p, lo=1, hi=proto.MAX_CHANNELS, integer=True))
        # the rows must fit the line: worst-case row bytes x rows/s x 10 bits, with headroom
        need = proto.required_baud(ctrl.n_channels, ctrl.sample_rate_hz)
        if ctrl.baud < need:
            std = next((b for b in proto.STANDARD_BAUDS if b >= need), None)
            raise ctx.fail(f'{p}.baud',
                           f'controller {cid}: {ctrl.n_channels} channels at '
                           f'{ctrl.sample_rate_hz:g} Hz need {need} baud '
                           f'({proto.max_row_bytes(ctrl.n_channels)}-byte rows x '
                           f'{ctrl.sample_rate_hz:g}/s x {proto.BITS_PER_BYTE} bits per byte, '
                           f'using at most {proto.LINE_USE_MAX:.0%} of the line), but baud is '
                           f'{ctrl.baud}'
                           + (f' (next standard rate: {std})' if std else
                              '; lower the sample rate or split the channels'))
        controllers.append(ctrl)
    ctrl_by_id = {c.id: c for c in controllers}

    # gates
    gates: list[Gate] = []
    for i, g in enumerate(ctx.seq(ctx.get(root, 'gates', sp), f'{sp}.gates', 1)):
        p = f'{sp}.gates[{i}]'
        g = ctx.mapping(g, p)
        ctx.keys(g, p, GATE_KEYS)
        gid = ctx.text(g, 'id', p, pattern=ID_RE)
        if any(x.id == gid for x in gates):
            raise ctx.fail(f'{p}.id', f'duplicate gate id {gid!r}')
        z = ctx.mapping(ctx.get(g, 'zone', p), f'{p}.zone')
        ctx.keys(z, f'{p}.zone', ZONE_KEYS)
        zone = Zone(*(ctx.num(z, k, f'{p}.zone') for k in ('x_min', 'x_max', 'y_min', 'y_max')))
        if zone.x_min >= zone.x_max or zone.y_min >= zone.y_max:
            raise ctx.fail(f'{p}.zone', 'x_min must be < x_max and y_min < y_max')
        in_store(zone.x_min, zone.y_min, f'{p}.zone')
        in_store(zone.x_max, zone.y_max, f'{p}.zone')
        r = ctx.mapping(ctx.get(g, 'reader', p), f'{p}.reader')
        ctx.keys(r, f'{p}.reader', ('port', 'baud'))
        gates.append(Gate(id=gid, kind=ctx.text(g, 'kind', p, choices=('entrance', 'exit')),
                          zone=zone,
                          reader=SerialPort(ctx.text(r, 'port', f'{p}.reader'),
                                            ctx.num(r, 'baud', f'{p}.reader', 9600, lo=1200,
                                                    integer=True))))
    for kind in ('entrance', 'exit'):
        if not any(g.kind == kind for g in gates):
            raise ctx.fail(f'{sp}.gates', f'the store needs at least one {kind} gate')

    # gondolas, shelves, plates
    gondolas: list[Gondola] = []
    used_channels: dict[tuple[str, int], str] = {}
    all_plate_ids: set[str] = set()
    for gi, g in enumerate(ctx.seq(ctx.get(root, 'gondolas', sp), f'{sp}.gondolas', 1)):
        gp = f'{sp}.gondolas[{gi}]'
        g = ctx.mapping(g, gp)
        ctx.keys(g, gp, GONDOLA_KEYS)
        gid = ctx.text(g, 'id', gp, pattern=ID_RE)
        if any(x.id == gid for x in gondolas):
            raise ctx.fail(f'{gp}.id', f'duplicate gondola id {gid!r}')
        pose = ctx.mapping(ctx.get(g, 'pose', gp), f'{gp}.pose')
        ctx.keys(pose, f'{gp}.pose', ('x', 'y', 'yaw_deg'))
        gx = ctx.num(pose, 'x', f'{gp}.pose')
        gy = ctx.num(pose, 'y', f'{gp}.pose')
        yaw = math.radians(ctx.num(pose, 'yaw_deg', f'{gp}.pose', 0.0, lo=-360, hi=360))
        in_store(gx, gy, f'{gp}.pose')
        gs = ctx.mapping(ctx.get(g, 'size_m', gp), f'{gp}.size_m')
        ctx.keys(gs, f'{gp}.size_m', ('x', 'y', 'z'))
        gsize = tuple(ctx.num(gs, k, f'{gp}.size_m', lo=0, lo_open=True) for k in 'xyz')
        shelves: list[Shelf] = []
        for si, s in enumerate(ctx.seq(ctx.get(g, 'shelves', gp), f'{gp}.shelves', 1)):
            spath = f'{gp}.shelves[{si}]'
            s = ctx.mapping(s, spath)
            ctx.keys(s, spath, ('id', 'z_m', 'plates'))
            sid_local = ctx.text(s, 'id', spath, pattern=ID_RE)
            sid = f'{gid}.{sid_local}'
            if any(x.id == sid for x in shelves):
                raise ctx.fail(f'{spath}.id', f'duplicate shelf id {sid_local!r} in gondola {gid}')
            sz = ctx.num(s, 'z_m', spath)
            if beyond(sz, 0.0, gsize[2]):
                raise ctx.fail(f'{spath}.z_m', f'shelf height {beyond(sz, 0.0, gsize[2])} '
                                               f'(the gondola is {_m(gsize[2])} m high)')
            plates: list[Plate] = []
            for pi, pl in enumerate(ctx.seq(ctx.get(s, 'plates', spath), f'{spath}.plates', 1)):
                pp = f'{spath}.plates[{pi}]'
                pl = ctx.mapping(pl, pp)
                ctx.keys(pl, pp, PLATE_KEYS)
                pid = f'{sid}.{ctx.text(pl, "id", pp, pattern=ID_RE)}'
                if pid in all_plate_ids:
                    raise ctx.fail(f'{pp}.id', f'duplicate plate id {pid!r}')
                all_plate_ids.add(pid)
                px = ctx.num(pl, 'x_m', pp)
                py = ctx.num(pl, 'y_m', pp, 0.0)
                psz = ctx.mapping(ctx.get(pl, 'size_m', pp), f'{pp}.size_m')
                ctx.keys(psz, f'{pp}.size_m', ('x', 'y'))
                sx = ctx.num(psz, 'x', f'{pp}.size_m', lo=0, lo_open=True)
                sy = ctx.num(psz, 'y', f'{pp}.size_m', lo=0, lo_open=True)
                why = beyond(px - sx / 2, 0.0, gsize[0]) or beyond(px + sx / 2, 0.0, gsize[0])
                if why:
                    raise ctx.fail(f'{pp}.x_m',
                                   f'plate spans {_m(px - sx / 2)}..{_m(px + sx / 2)} m'
                                   f' but the gondola is {_m(gsize[0])} m long: {why}')
                lc = ctx.mapping(ctx.get(pl, 'load_cell', pp), f'{pp}.load_cell')
                lp = f'{pp}.load_cell'
                ctx.keys(lc, lp, LOAD_CELL_KEYS)
                cid = ctx.text(lc, 'controller', lp)
                if cid not in ctrl_by_id:
                    raise ctx.fail(f'{lp}.controller', f'unknown controller {cid!r}; known: '
                                   f'{", ".join(sorted(ctrl_by_id))}')
                ch = ctx.num(lc, 'channel', lp, lo=0, integer=True,
                             hi=ctrl_by_id[cid].n_channels - 1)
                if (cid, ch) in used_channels:
                    raise ctx.fail(f'{lp}.channel', f'channel {ch} of controller {cid} is already '
                                   f'used by plate {used_channels[(cid, ch)]}')
                used_channels[(cid, ch)] = pid
                load_cell = LoadCell(
                    controller_id=cid, channel=ch,
                    tare_offset_counts=ctx.num(lc, 'tare_offset_counts', lp, lo=ADC_MIN,
                                               hi=ADC_MAX, integer=True),
                    grams_per_count=ctx.num(lc, 'grams_per_count', lp, lo=0, lo_open=True),
                    capacity_grams=ctx.num(lc, 'capacity_grams', lp, 20000.0, lo=0,
                                           lo_open=True))
                # plate centre in the store frame: gondola pose, then shelf, then plate offset
                lx, ly = px - gsize[0] / 2, py
                cx = gx + lx * math.cos(yaw) - ly * math.sin(yaw)
                cy = gy + lx * math.sin(yaw) + ly * math.cos(yaw)
                plates.append(Plate(id=pid, gondola_id=gid, shelf_id=sid, x_m=px, y_m=py,
                                    size_x_m=sx, size_y_m=sy, load_cell=load_cell,
                                    center_store=(cx, cy, sz), yaw_store=yaw))
            # plates on one shelf must not overlap
            for a in range(len(plates)):
                for b in range(a + 1, len(plates)):
                    pa, pb = plates[a], plates[b]
                    ox = (pa.size_x_m + pb.size_x_m) / 2 - abs(pa.x_m - pb.x_m)
                    oy = (pa.size_y_m + pb.size_y_m) / 2 - abs(pa.y_m - pb.y_m)
                    if ox > LAYOUT_TOL_M and oy > LAYOUT_TOL_M:
                        raise ctx.fail(f'{spath}.plates[{b}]',
                                       f'plate {pb.id} overlaps plate {pa.id} by '
                                       f'{ox:.3g} x {oy:.3g} m')
            shelves.append(Shelf(id=sid, gondola_id=gid, z_m=sz, plates=tuple(plates)))
        gondolas.append(Gondola(id=gid, x_m=gx, y_m=gy, yaw_rad=yaw, size_m=gsize,
                                shelves=tuple(shelves)))

    # planogram
    planogram: dict[str, PlanogramEntry] = {}
    for i, e in enumerate(ctx.seq(ctx.get(root, 'planogram', sp), f'{sp}.planogram', 1)):
        p = f'{sp}.planogram[{i}]'
        e = ctx.mapping(e, p)
        ctx.keys(e, p, PLANOGRAM_KEYS)
        pid = ctx.text(e, 'plate', p)
        if pid not in all_plate_ids:
            raise ctx.fail(f'{p}.plate', f'unknown plate {pid!r}')
        if pid in planogram:
            raise ctx.fail(f'{p}.plate', f'plate {pid} already has sku {planogram[pid].sku}')
        sku = ctx.text(e, 'sku', p)
        if sku not in catalog:
            raise ctx.fail(f'{p}.sku', f'sku {sku!r} is not in the catalog {catalog.path}')
        cap = ctx.num(e, 'capacity_units', p, lo=1, integer=True)
        init = ctx.num(e, 'initial_units', p, cap, lo=0, hi=cap, integer=True)
        planogram[pid] = PlanogramEntry(plate_id=pid, sku=sku, capacity_units=cap,
                                        initial_units=init)
    plates_by_id = {p.id: p for g in gondolas for s in g.shelves for p in s.plates}
    for pid, entry in planogram.items():
        full = catalog[entry.sku].unit_grams * entry.capacity_units
        cap_g = plates_by_id[pid].load_cell.capacity_grams
        if full > cap_g:
            idx = list(planogram).index(pid)
            raise ctx.fail(f'{sp}.planogram[{idx}].capacity_units',
                           f'{entry.capacity_units} x {catalog[entry.sku].unit_grams} g = '
                           f'{full} g '
                           f'exceeds the load cell capacity of plate {pid} ({cap_g} g)')

    cameras = _load_cameras(ctx, root, sp, path, in_store)

    return Store(id=store_id, name=ctx.text(root, 'name', sp, store_id),
                 frame_id=ctx.text(root, 'frame_id', sp, 'store', pattern=ID_RE),
                 size_m=size_m, gates=tuple(gates), controllers=tuple(controllers),
                 gondolas=tuple(gondolas), planogram=planogram, catalog=catalog,
                 path=str(path), cameras=cameras, raw=doc)


def _load_cameras(ctx: _Ctx, root: dict, sp: str, path: pathlib.Path, in_store) -> tuple:
    """The optional ``cameras:`` section; each calibration file is loaded and checked too."""
    from store_common.camera import CalibrationError, load_calibration
    cameras: list[Camera] = []
    for i, c in enumerate(ctx.seq(ctx.get(root, 'cameras', sp, []), f'{sp}.cameras')):
        p = f'{sp}.cameras[{i}]'
        c = ctx.mapping(c, p)
        ctx.keys(c, p, CAMERA_KEYS)
        cid = ctx.text(c, 'id', p, pattern=ID_RE)
        if any(x.id == cid for x in cameras):
            raise ctx.fail(f'{p}.id', f'duplicate camera id {cid!r}')
        calib = (path.parent / ctx.text(c, 'calibration', p)).resolve()
        try:
            model = load_calibration(calib)
        except CalibrationError as exc:
            raise ctx.fail(f'{p}.calibration', str(exc)) from None
        source = ctx.get(c, 'source', p)
        if isinstance(source, bool) or not isinstance(source, (int, str)) or source == '' \
                or (isinstance(source, int) and source < 0):
            raise ctx.fail(f'{p}.source', f'expected a device index >= 0, a file path or a URL, '
                                          f'got {source!r}')
        width = ctx.num(c, 'width', p, model.width, lo=16, hi=16384, integer=True)
        height = ctx.num(c, 'height', p, model.height, lo=16, hi=16384, integer=True)
        if (width, height) != (model.width, model.height):
            raise ctx.fail(f'{p}.width', f'{width}x{height} differs from the calibration\'s '
                                         f'{model.width}x{model.height} ({calib})')
        x, y, z = (float(v) for v in model.t_store_cam)
        in_store(x, y, f'{p}.calibration')
        if z <= 0:
            raise ctx.fail(f'{p}.calibration', f'camera height {z:.2f} m must be > 0')
        cameras.append(Camera(id=cid, calibration_file=str(calib), source=source,
                              fps=ctx.num(c, 'fps', p, 10.0, lo=0, lo_open=True, hi=120),
                              width=width, height=height, model=model))
    return tuple(cameras)
