"""The tracker's and fusion's parameters: one file (config/params/store.yaml) for the nodes and
the offline benchmark, every dataclass field a described parameter with a range."""
import dataclasses
import pathlib

import pytest

from store_common.params import ParameterError
from store_fusion.fusion import FusionParams
from store_fusion.joint import JointParams
from store_fusion.params import (declared, FUSION_SPECS, from_values, JOINT_SPECS,
                                 load_pipeline_params, TRACKER_SPECS)
from store_fusion.tracker import TrackerParams

ROOT = pathlib.Path(__file__).resolve().parents[3]
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'


@pytest.mark.parametrize('cls,specs', [(TrackerParams, TRACKER_SPECS),
                                       (FusionParams, FUSION_SPECS),
                                       (JointParams, JOINT_SPECS)])
def test_every_field_is_a_described_parameter_with_a_range_holding_its_default(cls, specs):
    # FusionParams.sku_confusion is a model read from a file (sku_confusion_file), not a number
    assert sorted(s.field for s in specs) == sorted(f.name for f in dataclasses.fields(cls)
                                                    if f.name != 'sku_confusion')
    d = cls()
    for s in specs:
        assert s.description and s.lo <= getattr(d, s.field) <= s.hi, s.name


def test_the_shipped_file_sets_every_parameter_and_the_nodes_read_it():
    text = PARAMS.read_text()
    p = load_pipeline_params(PARAMS)
    for section, specs in (('tracker', TRACKER_SPECS), ('fusion', FUSION_SPECS + JOINT_SPECS)):
        missing = [s.name for s in specs if s.name not in p.nodes[section]]
        assert not missing, f'{section}: {missing} not in {PARAMS.name}'
    # each value in the file is the one the params objects hold
    for obj, specs, section in ((p.tracker, TRACKER_SPECS, 'tracker'),
                                (p.fusion, FUSION_SPECS, 'fusion'),
                                (p.joint, JOINT_SPECS, 'fusion')):
        for s in specs:
            assert getattr(obj, s.field) == p.nodes[section][s.name], s.name
    assert 'tracker:' in text and 'fusion:' in text


def test_a_value_changed_in_the_file_reaches_the_params_object(tmp_path):
    text = PARAMS.read_text()
    changed = (text.replace('    color_weight: 1.0 ', '    color_weight: 0.25')
               .replace('    one_view_hand_weight: 0.3 ', '    one_view_hand_weight: 0.7 ')
               .replace('    joint_max_group: 4 ', '    joint_max_group: 2 ')
               # the shipped files beside it, from its copy elsewhere
               .replace('../fusion/', f'{PARAMS.parent.parent}/fusion/'))
    assert changed != text
    path = tmp_path / 'store.yaml'
    path.write_text(changed)
    p = load_pipeline_params(path)
    assert p.tracker.color_weight == 0.25
    assert p.fusion.one_view_hand_weight == 0.7
    assert p.joint.max_group == 2
    assert p.tracker.gate_chi2 == TrackerParams().gate_chi2     # the rest as shipped


def test_a_node_gets_the_same_object_from_its_declared_values():
    """The nodes' path: ``declare`` returns each value (here: what a parameters file would
    override), and the same conversion builds the dataclass."""
    file = load_pipeline_params(PARAMS)
    given = {**file.nodes['tracker'], 'cluster_m': 0.9, 'confirm_hits': 5}

    def declare_one(name, default, description, lo, hi):
        assert description and lo <= default <= hi
        return given.get(name, default)
    params = declared(TrackerParams, TRACKER_SPECS, declare_one)
    assert params == dataclasses.replace(file.tracker, cluster_m=0.9, confirm_hits=5)


@pytest.mark.parametrize('name,value', [('gate_chi2', -1.0), ('confirm_hits', 2.5),
                                        ('color_weight', 'high'), ('max_coast_s', True)])
def test_a_value_out_of_range_or_of_the_wrong_type_is_refused_by_name(name, value):
    with pytest.raises(ParameterError, match=name):
        from_values(TrackerParams, TRACKER_SPECS, {name: value})


def test_an_integer_for_a_float_parameter_is_that_float():
    assert from_values(FusionParams, FUSION_SPECS, {'post_s': 1}).post_s == 1.0
