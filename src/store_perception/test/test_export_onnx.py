"""``export_detector_onnx``'s choice of files: ``--only`` re-exports the named stages and leaves
the others' .onnx files alone (the exporter itself is replaced: it needs torch)."""
import pathlib

import pytest

from store_perception import export_onnx


@pytest.fixture
def exported(monkeypatch, tmp_path):
    for name, _, _ in export_onnx.SHIPPED:
        (tmp_path / name).write_bytes(b'pt')
    calls = []

    def fake_export(path, task, imgsz):
        calls.append((pathlib.Path(path).name, task, imgsz))
        return pathlib.Path(path).with_suffix('.onnx')
    monkeypatch.setattr(export_onnx, 'export', fake_export)
    return tmp_path, calls


def test_without_only_every_shipped_file_is_exported(exported):
    models, calls = exported
    assert export_onnx.main(['--models-dir', str(models)]) == 0
    assert calls == list(export_onnx.SHIPPED)


def test_only_exports_the_named_stage_with_its_task_and_size(exported):
    models, calls = exported
    crop = export_onnx.CROP_WEIGHTS
    assert export_onnx.main(['--models-dir', str(models), '--only', crop]) == 0
    assert calls == [(crop, 'detect', 224)]


def test_only_rejects_a_file_that_is_not_shipped(exported, capsys):
    models, calls = exported
    with pytest.raises(SystemExit):
        export_onnx.main(['--models-dir', str(models), '--only', 'other.pt'])
    assert calls == [] and 'other.pt' in capsys.readouterr().err
