import glob
import os

from setuptools import find_packages, setup

package_name = 'store_bringup'
# launch/, config/ and rviz/ live at the top of the workspace (the user's layout); install them
# into this package's share so `ros2 launch store_bringup store.launch.py` finds them.
# realpath: colcon runs this file through a symlink in build/ with --symlink-install.
# setuptools wants data_files relative to the working directory.
TOP = os.path.relpath(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))


def top_files(pattern):
    return sorted(glob.glob(os.path.join(TOP, pattern)))


def share_tree(folder):
    out = []
    for d, _, files in os.walk(os.path.join(TOP, folder)):
        rel = os.path.relpath(d, TOP)
        files = sorted(os.path.join(d, f) for f in files)
        if files:
            out.append((os.path.join('share', package_name, rel), files))
    return out


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', top_files('launch/*.launch.py')),
    ] + share_tree('config') + share_tree('rviz'),
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='Walk-out store maintainers',
    maintainer_email='maintainers@walkout-store.org',
    description=(
        'Launch files, node graph description, runner and configuration of the walk-out store.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'run_store = store_bringup.runner:main',
        ],
    },
)
