from setuptools import find_packages, setup

package_name = 'store_fusion'

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
    description=('Multi-view shopper tracking from camera detections and weight + vision fusion '
                 'of shelf events (who took what).'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'tracker = store_fusion.tracker_node:main',
            'fusion = store_fusion.fusion_node:main',
        ],
    },
)
