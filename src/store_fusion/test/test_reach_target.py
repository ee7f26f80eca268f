"""The renderer draws a reaching hand where the fusion looks for it: one reach target
(store_common.reach) for both."""
import pathlib

from store_common.description import load_store
from store_common.reach import reach_target
from store_fusion.geometry import StoreGeometry
from store_sim.render import CameraRenderer
from store_sim.scenario import load_scenario

ROOT = pathlib.Path(__file__).resolve().parents[3]

SCENARIO = """
scenario:
  store: demo_store
  seed: 11
  duration_s: 20.0
  shoppers:
    - id: alice
      enter_s: 1.0
      exit_s: 18.0
      actions:
        - {t_s: 7.0, kind: take, plate: g1.s1.p1, sku: COLA-330, quantity: 1}
        - {t_s: 12.0, kind: take, plate: g2.s2.p3, sku: PRETZEL, quantity: 1}
"""


def test_the_rendered_hand_at_the_plate_is_at_the_fusions_reach_region(tmp_path):
    store = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    path = tmp_path / 'sc.yaml'
    path.write_text(SCENARIO)
    sc = load_scenario(path, store)
    geom = StoreGeometry(store)
    motion = CameraRenderer(store, store.cameras[0], sc, noise=False).shoppers[0]
    for j, a in enumerate(sc.shoppers[0].actions):
        st = motion.state(a.t_s - 0.05)          # arm fully out
        assert st['reaching_plate'] == a.plate
        hand = st['hands']['right']
        assert geom.plate_distance(a.plate, hand) < 1e-9
        others = [pid for pid in geom.plates if pid != a.plate]
        assert min(geom.plate_distance(p, hand) for p in others) > 0.05
        # the fusion's target is the renderer's at the plate's centre line
        plate = store.plate(a.plate)
        assert tuple(geom.plate_targets[a.plate]) == reach_target(plate)
