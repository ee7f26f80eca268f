from setuptools import find_packages, setup

package_name = 'store_bench'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='Walk-out store maintainers',
    maintainer_email='maintainers@walkout-store.org',
    description=(
        'Benchmark and simulation harness: the offline runners of the store pipeline, the '
        'detection and reviewer simulators, and the benchmark tools. Nothing the store runs '
        'imports it.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'replay_weight_only = store_bench.replay_weight_only:main',
        ],
    },
)
