"""Fine-tuning the shipped hand SKU classifier on a folder dataset (CPU, a few seconds)."""
import hashlib

import cv2
import numpy as np
import pytest

from store_perception.detection import MODELS_DIR
from store_perception.hand_sku import HAND_PRIOR, HAND_WEIGHTS, HandSkuClassifier
from store_perception.train import fine_tune_hand_classifier


def window(colour, rng) -> np.ndarray:
    """A 64 px window: grey floor, a hand-sized square of ``colour`` in the middle."""
    img = np.full((64, 64, 3), 120, np.uint8) + rng.integers(0, 12, (64, 64, 3), dtype=np.uint8)
    img[24:40, 24:40] = colour
    return img


def dataset(root, classes: dict, n: int = 24):
    rng = np.random.default_rng(0)
    for name, colour in classes.items():
        folder = root / 'train' / name
        folder.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(folder / f'{i}.jpg'), window(colour, rng))


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fine_tune_keeps_the_shipped_classes_adds_new_ones_and_learns(tmp_path):
    shipped = MODELS_DIR / HAND_WEIGHTS
    before = sha(shipped)
    # a SKU the shipped model never saw (bright magenta in hand), and empty windows
    dataset(tmp_path / 'data', {'NEW-SKU': (255, 0, 255), 'empty': (120, 120, 120)})
    old = HandSkuClassifier(shipped, runtime='torch')
    probe = window((255, 0, 255), np.random.default_rng(9))
    out = fine_tune_hand_classifier(tmp_path / 'data', tmp_path / 'w', epochs=4, lr=1e-3,
                                    threads=1, onnx=True)
    assert out == tmp_path / 'w' / HAND_WEIGHTS and (tmp_path / 'w' / HAND_PRIOR).is_file()
    assert sha(shipped) == before                       # never over the shipped weights
    for runtime in ('torch', 'onnx'):
        new = HandSkuClassifier(out, runtime=runtime)
        assert set(old.names.values()) < set(new.names.values())
        assert 'NEW-SKU' in new.names.values()
        [ans] = new.classify(probe, [(24, 24, 40, 40)])
        assert ans.sku == 'NEW-SKU' and ans.p_product > 0.5, (runtime, ans)
    # the old classes keep their indices (the head grew, it was not replaced)
    assert {k: v for k, v in new.names.items() if k in old.names} == old.names


def test_fine_tune_refuses_the_shipped_folder_and_an_empty_dataset(tmp_path):
    dataset(tmp_path / 'data', {'empty': (120, 120, 120)}, n=2)
    with pytest.raises(ValueError, match='overwrite'):
        fine_tune_hand_classifier(tmp_path / 'data', MODELS_DIR, epochs=1, onnx=False)
    (tmp_path / 'none' / 'train').mkdir(parents=True)
    with pytest.raises(ValueError, match='no training windows'):
        fine_tune_hand_classifier(tmp_path / 'none', tmp_path / 'w', epochs=1, onnx=False)
