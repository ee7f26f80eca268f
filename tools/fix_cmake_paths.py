"""Rewrite the build host's include paths baked into the ROS wheels' CMake exports.

The PyPI ROS wheels were built in a manylinux container; their exported CMake targets name
``/opt/python/cp3XX-cp3XX/include/python3.X`` and that container's NumPy include directory.
CMake refuses include paths that do not exist, so an interface package build fails at generate
time. This replaces them with this interpreter's include directory and ``numpy.get_include()``.
"""
import pathlib
import re
import sys
import sysconfig

import numpy


def main(prefix: str) -> int:
    share = pathlib.Path(prefix) / 'share'
    py_inc = sysconfig.get_paths()['include']
    np_inc = numpy.get_include()
    np_pat = re.compile(r'/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/'
                        r'(?:_core|core)/include')
    py_pat = re.compile(r'/opt/python/cp3\d+-cp3\d+/include/python3\.\d+')
    changed = 0
    for path in share.glob('*/cmake/*.cmake'):
        text = path.read_text()
        new = py_pat.sub(py_inc, np_pat.sub(np_inc, text))
        if new != text:
            path.write_text(new)
            changed += 1
    print(f'[setup] rewrote include paths in {changed} CMake files under {share}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
