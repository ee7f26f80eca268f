from setuptools import find_packages, setup

package_name = 'store_drivers'

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
        'Hardware drivers: plate controller (load cell) serial driver and gate QR-reader driver.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'gate_driver = store_drivers.gate_driver_node:main',
            'loadcell_driver = store_drivers.loadcell_driver_node:main',
        ],
    },
)
