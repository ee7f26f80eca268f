from setuptools import find_packages, setup

package_name = 'store_viz'

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
        'Store visualization: MarkerArray topics for rviz and a top-down PNG renderer of '
        'the same markers.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'store_markers = store_viz.store_markers_node:main',
            'render_markers = store_viz.render_markers_node:main',
        ],
    },
)
