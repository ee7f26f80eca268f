from setuptools import find_packages, setup

package_name = 'store_sim'

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
        'Store simulator: scenarios, plate controller and gate reader emulators on '
        'pseudo-terminals, evaluator.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'receipt_recorder = store_sim.receipt_recorder_node:main',
            'generate_scenarios = store_sim.generator:main',
            'evaluate = store_sim.evaluator:main',
            'sim = store_sim.sim_node:main',
            'render_scenario = store_sim.render_scenario:main',
            'make_dataset = store_sim.dataset:main',
        ],
    },
)
