from setuptools import find_packages, setup

package_name = 'store_bags'

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
        'Rosbag2 (MCAP) record and replay of the store topics, bag info, and '
        'scenario-to-bag export of the simulator.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'bag_record = store_bags.bag_record_node:main',
            'bag_play = store_bags.bag_play_node:main',
            'bag_info = store_bags.info:main',
            'scenario_to_bag = store_bags.scenario_to_bag:main',
        ],
    },
)
