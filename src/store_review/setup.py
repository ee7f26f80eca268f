from setuptools import find_packages, setup

package_name = 'store_review'

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
    description=('Human review: review queue with evidence, reviewer web console, learning '
                 'from decisions.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'review = store_review.review_node:main',
            'review_users = store_review.users_cli:main',
            'review_console = store_review.console_cli:main',
            'review_learn = store_review.learn_cli:main',
        ],
    },
)
