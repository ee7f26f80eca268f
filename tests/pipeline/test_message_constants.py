"""Message constants live in store_interfaces: no runtime module retypes one as an integer.

Scans the module-level assignments of every package module under src/ for a name that is a
message constant (``KIND_ENTER``), or one without its prefix (``TENTATIVE`` for
``STATE_TENTATIVE``), bound to an integer literal (alone or in a tuple)."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONSTANT = re.compile(r'^\s*(?:u?int\d+|byte|char)\s+([A-Z][A-Z0-9_]*)\s*=\s*(-?\d+)', re.M)


def message_constants() -> set[str]:
    names = set()
    for f in (ROOT / 'src' / 'store_interfaces').glob('*/*.msg'):
        for name, _value in CONSTANT.findall(f.read_text()):
            names.add(name)
            if '_' in name:
                names.add(name.split('_', 1)[1])
    return names


def retyped(source: str, names: set[str]) -> list[str]:
    out = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = ([(target, node.value)] if isinstance(target, ast.Name) else
                     list(zip(target.elts, node.value.elts))
                     if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                     else [])
            out += [f'{t.id} = {v.value}' for t, v in pairs
                    if isinstance(t, ast.Name) and t.id in names
                    and isinstance(v, ast.Constant) and type(v.value) is int]
    return out


def test_the_scan_finds_a_retyped_constant():
    names = message_constants()
    assert {'KIND_ENTER', 'ACTION_TAKE', 'TENTATIVE', 'VISION_NONE'} <= names
    assert retyped('KIND_ENTER = 1\nX = 3\nTENTATIVE, LOST = 1, 4\n', names) == [
        'KIND_ENTER = 1', 'TENTATIVE = 1', 'LOST = 4']
    assert retyped('from m import GateEvent\nKIND_ENTER = GateEvent.KIND_ENTER\n', names) == []


def test_no_package_module_retypes_a_message_constant():
    names = message_constants()
    found = {}
    for f in sorted((ROOT / 'src').glob('*/store_*/**/*.py')):
        hits = retyped(f.read_text(), names)
        if hits:
            found[str(f.relative_to(ROOT))] = hits
    assert found == {}
