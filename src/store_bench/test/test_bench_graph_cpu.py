"""The per-process CPU sampler of bench_graph_cpu: labels, /proc reading and the arithmetic."""
import os
import subprocess
import sys
import time

from store_bench.bench_graph_cpu import (cores_per_label, descendants, node_label, read_cpu_s,
                                         thread_group, thread_times)


def test_node_label_from_ros_args():
    argv = ['/usr/bin/python3', '/ws/lib/store_drivers/loadcell_driver', '--ros-args', '-r',
            '__node:=loadcell_driver', '-r', '__ns:=/store/pc_g1', '--params-file', 'p.yaml']
    assert node_label(argv) == 'store/pc_g1/loadcell_driver'
    assert node_label(['/x/lib/store_sim/sim', '--ros-args', '-r', '__node:=sim']) == 'sim'
    assert node_label(['/usr/bin/python3', '/ws/lib/pkg/tool', '--flag']) == 'tool'


def test_cores_add_up_per_label_and_skip_processes_not_alive_at_both_ends():
    before = {1: 10.0, 2: 5.0, 3: 1.0}
    after = {1: 12.0, 2: 6.0, 4: 9.0}         # 3 ended, 4 started: neither counts
    labels = {1: 'cam', 2: 'cam', 3: 'x', 4: 'y'}
    assert cores_per_label(before, after, labels, 4.0) == {'cam': 0.75}


def test_reads_a_busy_child_and_its_threads():
    child = subprocess.Popen([sys.executable, '-c',
                              'import time\nt = time.time()\nwhile time.time() - t < 3: pass'])
    try:
        time.sleep(0.2)
        assert child.pid in descendants(os.getpid())
        c0 = read_cpu_s(child.pid)
        time.sleep(1.0)
        c1 = read_cpu_s(child.pid)
        assert c0 is not None and c1 - c0 > 0.3          # it spins: near a core
        groups = {g for _, g in thread_times(child.pid)}
        assert groups                                    # the main thread at least
    finally:
        child.kill()
        child.wait()
    assert read_cpu_s(child.pid) is None                 # reaped: gone from /proc
    assert thread_group('dds.udp.7411') == 'dds.udp.#'
