from setuptools import find_packages, setup

package_name = 'store_shelf'

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
        'Shelf events: settled weight-change detection per plate and product/count hypotheses.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'shelf_events = store_shelf.shelf_event_node:main',
        ],
    },
)
