"""The tracker's and the fusion's parameters: one table (name, description, range) per
dataclass, used by the nodes to declare them and by the offline benchmark to read the same
values from the same parameters file (config/params/store.yaml, ``tracker:`` and ``fusion:``).

Never imports rclpy: the nodes pass what ``store_common.ros.declare`` returned to
:func:`from_values`, the benchmark passes the file's section (:func:`load_pipeline_params`).
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, fields, replace
from typing import Any

from store_common.params import check_value, load_params_file

from store_fusion.fusion import FusionParams
from store_fusion.joint import JointParams
from store_fusion.sku_confusion import SkuConfusion
from store_fusion.tracker import TrackerParams


@dataclass(frozen=True)
class ParamSpec:
    name: str            # ROS parameter name
    field: str           # dataclass field it sets
    description: str
    lo: float
    hi: float


def _specs(prefix: str, table: dict[str, tuple[str, float, float]]) -> tuple[ParamSpec, ...]:
    return tuple(ParamSpec(prefix + f, f, d, lo, hi) for f, (d, lo, hi) in table.items())


TRACKER_SPECS = _specs('', {
    'accel_sd': ('Process noise of the constant-velocity filter: random acceleration '
                 '[m/s^2].', 0.01, 20.0),
    'gate_chi2': ('Mahalanobis gate of an association (chi2, 2 dof).', 1.0, 100.0),
    'cluster_m': ('Observations of one shopper from different cameras are this near [m].',
                  0.05, 5.0),
    'confirm_hits': ('Cycles a track is seen before it is confirmed.', 1, 100),
    'max_coast_s': ('A track not seen this long is lost [s].', 0.5, 600.0),
    'bind_window_s': ('An entrance scan and a track birth at most this far apart are bound '
                      '[s].', 0.1, 60.0),
    'entrance_margin_m': ('Births within this of the entrance zone are entries [m].', 0.0,
                          10.0),
    'bind_walk_mps': ('A newcomer walks at most this fast from the gate [m/s].', 0.0, 10.0),
    'bind_hits': ('A track takes an entrance scan once seen this many cycles.', 1, 100),
    'bind_delay_s': ('A scan is bound this long after it happened (the newcomer is seen) [s].',
                     0.0, 10.0),
    'bind_m_per_s': ('Binding cost of a birth away from the scan time [m/s].', 0.0, 100.0),
    'reid_radius_m': ('Re-identification radius around a track that lost its shopper [m].',
                      0.0, 20.0),
    'reid_speed_mps': ('... growing this fast while the track is unseen [m/s].', 0.0, 10.0),
    'max_speed_mps': ('Fastest a shopper walks [m/s].', 0.1, 10.0),
    'color_weight': ('Weight of the shirt-colour distance in the association cost (per chi2; '
                     '0: colour off).', 0.0, 100.0),
    'color_cap': ('At most this much colour cost (a partly hidden box mixes colours).', 0.0,
                  1000.0),
    'color_gate': ('Never associate beyond this colour distance (chi2) ...', 0.0, 1e6),
    'color_min_n': ('... once the track\'s colour rests on this many cycles.', 1, 1000),
    'color_alone_m': ('A track learns its colour only with no other track this near [m].',
                      0.0, 10.0),
    'color_learn': ('... and only from observations this close to it (chi2).', 0.0, 1e6),
    'duplicate_m': ('An anonymous track this near a seen bound one is its double [m].', 0.0,
                    5.0),
    'lookalike_bind_m': ('Binding cost of a track in the shirt of a shopper already inside '
                         '[m].', 0.0, 100.0),
    'bind_max_wait_s': ('A scan that no track born within bind_window_s took goes to the first '
                        'track born at the entrance after it, for at most this long after the '
                        'scan (late or skipped detector frames of the door) [s].', 0.0, 600.0),
    'bind_door_looks': ('... only when the door was looked at (a frame of a camera that sees '
                        'it) fewer times than this within bind_window_s after the scan.', 0,
                        10000),
    'tentative_misses': ('A tentative track is lost once unseen (and 1 s old) in this many steps '
                         'with a frame of a camera that sees where it stands.', 1, 100),
    'tentative_max_s': ('... or once unseen this long, looked at or not [s].', 1.0, 600.0),
    'hand_reach_m': ('A hand in no shopper box, placed where its ray meets a plate, is the '
                     'hand of the shopper in front of that plate this near to it [m]; 0: '
                     'dropped.', 0.0, 2.0),
})

FUSION_SPECS = _specs('', {
    'pre_s': ('Hands are looked at from this long before the event start [s].', 0.0, 10.0),
    'post_s': ('... until this long after the settled stamp [s].', 0.0, 10.0),
    'hand_sigma_m': ('Hand-to-plate distance scale of the likelihood [m].', 0.01, 2.0),
    'body_weight': ('Likelihood of a shopper in front of the plate whose hands were not seen.',
                    0.0, 1.0),
    'reach_max_speed_mps': ('A shopper walking faster than this is not reaching [m/s].', 0.0,
                            10.0),
    'body_reach_m': ('Hands count only with the body in front of the plate, this near [m].',
                     0.0, 5.0),
    'speed_span_s': ('A shopper\'s speed is measured over +- this [s].', 0.0, 5.0),
    'body_range_m': ('"In front of the plate": body within this of the hand target [m].', 0.0,
                     5.0),
    'nobody': ('Likelihood that no tracked shopper caused the event (an unseen cause).', 0.0,
               1.0),
    'vision_window_s': ('Product boxes in the hand this long before the start / after the '
                        'settled stamp [s].', 0.0, 10.0),
    'sku_accuracy': ('P(a product box\'s SKU is right).', 0.0, 1.0),
    'max_votes': ('At most this many product boxes count (they are correlated).', 0.0, 100.0),
    'other_item_share': ('Share of the SKUs seen gained or lost in a hand around an event that '
                         'are another item (one put away, or out of view after the event) '
                         'rather than the event\'s product; they speak for no hypothesis.',
                         0.0, 0.99),
    'product_shopper_weight': ('Weight of the products seen gained or lost in a shopper\'s '
                               'hands as evidence of who did an event (0: hands only).', 0.0,
                               10.0),
    'beside_sigma_m': ('A shopper who stood this far to the side of the plates\' width (the '
                       'median over the frames in front of them) is exp(-1/2) as likely the '
                       'cause of the event [m]; 0: where one stood along the shelf is no '
                       'evidence.', 0.0, 10.0),
    'hypothesis_vote_floor': ('A SKU among the event\'s weight hypotheses counts as gained or '
                              'lost in a shopper\'s hands from this share of their frames '
                              'around the event (other SKUs from 0.3, the floor for any box).',
                              0.01, 0.3),
    'one_view_hand_weight': ('Weight of a hand seen by one camera (its depth assumed at a '
                             'plate\'s height) against a triangulated one as evidence of a '
                             'reach.', 0.0, 1.0),
})

JOINT_SPECS = _specs('joint_', {
    'gap_s': ('Shelf events less than this apart (start to settled) are concurrent; on '
              'different plates they are decided jointly [s].', 0.0, 10.0),
    'same_shopper_factor': ('Likelihood factor of one shopper causing two concurrent events on '
                            'different plates (two hands: rare, not impossible).', 0.0, 1.0),
    'max_group': ('Concurrent events up to this many are enumerated jointly; larger groups are '
                  'decided event by event (1: joint reasoning off).', 1, 8),
    'max_assignments': ('... and so are groups with more shopper assignments than this.', 1,
                        10_000_000),
})

GROUPS = {'tracker': ((TrackerParams, TRACKER_SPECS),),
          'fusion': ((FusionParams, FUSION_SPECS), (JointParams, JOINT_SPECS))}


def defaults(cls, specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """{parameter name: the dataclass default} of a table."""
    d = cls()
    return {s.name: getattr(d, s.field) for s in specs}


def from_values(cls, specs: tuple[ParamSpec, ...], values: dict[str, Any]):
    """The dataclass ``cls`` from ROS parameter values ({name: value}: a node's declared
    values, or a parameters file's section). Names not in ``specs`` are ignored (the node's
    other parameters); a missing name keeps the dataclass default; a value of the wrong type or
    out of range raises ``store_common.params.ParameterError`` naming the parameter."""
    base = defaults(cls, specs)
    kw = {s.field: check_value(s.name, base[s.name], values[s.name], lo=s.lo, hi=s.hi)
          for s in specs if s.name in values}
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in kw.items() if k in known})


@dataclass(frozen=True)
class PipelineParams:
    """What the tracker and fusion nodes run with, read from one parameters file."""
    tracker: TrackerParams
    fusion: FusionParams
    joint: JointParams
    nodes: dict          # {node name: its whole section} (cycle_s, max_hold_s, ...)


def load_pipeline_params(path: str | pathlib.Path) -> PipelineParams:
    """The ``tracker:`` and ``fusion:`` sections of a parameters file as the nodes read them
    (``store_common.params.load_params_file``, the reader of the launch graph)."""
    doc = load_params_file(path)
    tracker, fusion = doc.get('tracker', {}), doc.get('fusion', {})
    return PipelineParams(from_values(TrackerParams, TRACKER_SPECS, tracker),
                          with_confusion(from_values(FusionParams, FUSION_SPECS, fusion),
                                         fusion.get('sku_confusion_file', '')),
                          from_values(JointParams, JOINT_SPECS, fusion),
                          {'tracker': tracker, 'fusion': fusion})


def with_confusion(params: FusionParams, path) -> FusionParams:
    """``params`` with the SKU confusion model of the fusion node's ``sku_confusion_file``
    (``''``: none, every wrong SKU equally likely); a file that is not one raises
    ``store_fusion.sku_confusion.ConfusionFileError`` naming it."""
    if not path:
        return params
    if not isinstance(path, str):
        raise ValueError(f'sku_confusion_file: expected a path, got {path!r}')
    return replace(params, sku_confusion=SkuConfusion.load(path))


def declared(cls, specs: tuple[ParamSpec, ...], declare_one):
    """The dataclass ``cls`` from a node's parameters: ``declare_one(name, default,
    description, lo, hi)`` declares one (``store_common.ros.declare``) and returns its value."""
    base = defaults(cls, specs)
    return from_values(cls, specs, {s.name: declare_one(s.name, base[s.name], s.description,
                                                        s.lo, s.hi) for s in specs})
