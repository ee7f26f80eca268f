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
            'bench_bag_check = store_bench.bench_bag_check:main',
            'live_reach = store_bench.live_reach:main',
            'bench_db_open = store_bench.bench_db_open:main',
            'bench_detector = store_bench.bench_detector:main',
            'bench_event_merge = store_bench.bench_event_merge:main',
            'bench_evidence = store_bench.bench_evidence:main',
            'bench_fusion = store_bench.bench_fusion:main',
            'bench_graph_cpu = store_bench.bench_graph_cpu:main',
            'bench_hand_learning = store_bench.bench_hand_learning:main',
            'bench_kill = store_bench.bench_kill:main',
            'bench_live_detector = store_bench.bench_live_detector:main',
            'bench_live_graph = store_bench.bench_live_graph:main',
            'bench_vision_replay = store_bench.vision_replay:main',
            'bench_real_footage = store_bench.bench_real_footage:main',
            'bench_review = store_bench.bench_review:main',
            'bench_review_login = store_bench.bench_review_login:main',
            'bench_shutdown = store_bench.bench_shutdown:main',
            'label_frames = store_bench.label_frames:main',
            'learning_days = store_bench.learning_days:main',
            'learning_days_live = store_bench.learning_days_live:main',
            'sweep_review_threshold = store_bench.sweep_review_threshold:main',
            'track_real_footage = store_bench.track_real_footage:main',
            'replay_weight_only = store_bench.replay_weight_only:main',
        ],
    },
)
