"""Runtime modules carry no dataset-building command lines, and the detector's stages import
each other one way: detection -> hand_sku -> crops (datasets.py builds the training sets)."""
import ast
import pathlib

PERCEPTION = pathlib.Path(__file__).resolve().parents[2] / 'src' / 'store_perception' / \
    'store_perception'
RUNTIME = ('detection.py', 'hand_sku.py', 'crops.py', 'detector_node.py')


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_runtime_modules_build_no_datasets_and_parse_no_command_lines():
    for name in RUNTIME:
        mods = imported_modules(PERCEPTION / name)
        assert 'argparse' not in mods, name
        assert 'store_perception.datasets' not in mods, name
    assert imported_modules(PERCEPTION / 'datasets.py') >= {
        'argparse', 'store_perception.detection', 'store_perception.hand_sku'}


def test_the_stages_import_each_other_one_way():
    assert 'store_perception.hand_sku' in imported_modules(PERCEPTION / 'detection.py')
    assert 'store_perception.detection' not in imported_modules(PERCEPTION / 'hand_sku.py')
    assert not imported_modules(PERCEPTION / 'crops.py') & {
        'store_perception.detection', 'store_perception.hand_sku'}
