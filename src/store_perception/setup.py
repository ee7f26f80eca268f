import glob

from setuptools import find_packages, setup

package_name = 'store_perception'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/models',
         glob.glob('models/*.pt') + glob.glob('models/*.onnx') + glob.glob('models/*.json')
         + ['models/DATA_CARD.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='Walk-out store maintainers',
    maintainer_email='maintainers@walkout-store.org',
    description=(
        'Cameras and detection: OpenCV camera drivers, cv_bridge-compatible image conversion, '
        'a YOLO detector of shoppers, hands and products (second stage on shopper crops).'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'camera_driver = store_perception.camera_driver_node:main',
            'detector = store_perception.detector_node:main',
            'export_detector_onnx = store_perception.export_onnx:main',
            'train_detector = store_perception.train:main',
            'make_crop_dataset = store_perception.datasets:crop_dataset_main',
            'make_hand_dataset = store_perception.datasets:hand_dataset_main',
        ],
    },
)
