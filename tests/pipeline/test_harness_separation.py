"""One pipeline: the packages the store runs never import the harness (store_sim, store_bench)
nor depend on it at run time, and every bench console script names a module with a main()."""
import ast
import importlib.util
import pathlib
import xml.etree.ElementTree as ET

SRC = pathlib.Path(__file__).resolve().parents[2] / 'src'
RUNTIME = ('store_fusion', 'store_review', 'store_perception', 'store_cart', 'store_shelf',
           'store_common', 'store_drivers', 'store_viz')
HARNESS = ('store_sim', 'store_bench')
RUN_TIME_DEPENDS = ('depend', 'exec_depend', 'build_depend', 'build_export_depend')


def imports(source: str) -> set[str]:
    """Every module a source imports at any depth (function-level too), with
    ``importlib.import_module('x')`` and ``__import__('x')`` of a constant name."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == 'import_module')
                   or (isinstance(node.func, ast.Name) and node.func.id == '__import__'))):
            out.add(node.args[0].value)
    return out


def harness_imports(source: str) -> set[str]:
    return {m for m in imports(source) if m.split('.')[0] in HARNESS}


def runtime_modules(pkg: str) -> list[pathlib.Path]:
    return [p for p in sorted((SRC / pkg).rglob('*.py')) if 'test' not in p.relative_to(
        SRC / pkg).parts[:-1] and not p.name.startswith('test_')]


def test_the_scan_sees_every_way_of_importing():
    src = '''
import os
def f():
    from store_sim.generator import generate
    import store_bench.simcam as sc
class C:
    def g(self):
        import importlib
        return importlib.import_module('store_bench.fusion_offline'), __import__('store_sim')
from . import store_sim_like
'''
    assert harness_imports(src) == {'store_sim.generator', 'store_bench.simcam',
                                    'store_bench.fusion_offline', 'store_sim'}
    assert harness_imports('import store_simulator\nfrom store_benchmarks import x\n') == set()


def test_runtime_packages_never_import_the_harness():
    found = {}
    for pkg in RUNTIME:
        mods = runtime_modules(pkg)
        assert mods, f'no modules found for {pkg}'
        for path in mods:
            bad = harness_imports(path.read_text())
            if bad:
                found[str(path.relative_to(SRC))] = sorted(bad)
    assert found == {}


def test_runtime_packages_do_not_depend_on_the_harness_at_run_time():
    for pkg in RUNTIME:
        root = ET.parse(SRC / pkg / 'package.xml').getroot()
        deps = {(el.tag, (el.text or '').strip()) for el in root if el.tag in RUN_TIME_DEPENDS}
        assert not {d for d in deps if d[1] in HARNESS}, pkg


def console_scripts(setup_py: pathlib.Path) -> dict[str, str]:
    """name -> 'module:function' of the console_scripts in a setup.py (read, not run)."""
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == 'console_scripts':
                    entries = ast.literal_eval(v)
                    return {e.split('=')[0].strip(): e.split('=')[1].strip() for e in entries}
    return {}


def test_every_bench_console_script_resolves_to_a_main():
    scripts = console_scripts(SRC / 'store_bench' / 'setup.py')
    assert {'bench_fusion', 'bench_review', 'bench_live_graph', 'bench_kill',
            'sweep_review_threshold'} <= set(scripts)
    for name, target in scripts.items():
        module, _, func = target.partition(':')
        assert func == 'main', name
        assert module.startswith('store_bench.'), name
        path = SRC / 'store_bench' / (module.replace('.', '/') + '.py')
        assert path.is_file(), f'{name}: {path} missing'
        spec = importlib.util.find_spec(module)
        assert spec is not None and pathlib.Path(spec.origin).resolve() == path.resolve(), name
        mains = [n for n in ast.parse(path.read_text()).body
                 if isinstance(n, ast.FunctionDef) and n.name == 'main']
        assert len(mains) == 1, f'{name}: no top-level main() in {module}'
        a = mains[0].args
        positional = a.posonlyargs + a.args
        assert [p.arg for p in positional] == ['argv'] and len(a.defaults) == 1, \
            f'{name}: main takes (argv=None), so a test can call it with arguments'
        assert None not in a.kw_defaults, f'{name}: main() has a required keyword'
