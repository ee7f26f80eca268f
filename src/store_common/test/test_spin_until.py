"""spin_until: the loop of the nodes that run their own (render_markers, receipt_recorder)."""
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.node import Node  # noqa: E402

from store_common.ros import spin_until  # noqa: E402


@pytest.fixture
def node(monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    rclpy.init()
    n = Node('spin_until_test')
    yield n
    n.destroy_node()
    if rclpy.ok():
        rclpy.shutdown()


def test_spins_until_done(node, monkeypatch):
    calls = []
    monkeypatch.setattr(rclpy, 'spin_once', lambda n, timeout_sec=None: calls.append(n))
    spin_until(node, lambda: len(calls) >= 3, period_s=0.01)
    assert calls == [node] * 3


def test_a_stop_that_fails_a_take_ends_the_loop_quietly(node, monkeypatch):
    def spin_once(n, timeout_sec=None):
        rclpy.shutdown()          # the default SIGINT handler, landing during a take
        raise RuntimeError('Unable to convert call argument')
    monkeypatch.setattr(rclpy, 'spin_once', spin_once)
    spin_until(node, lambda: False)
    assert not rclpy.ok()


def test_a_take_error_while_the_context_is_up_propagates(node, monkeypatch):
    def spin_once(n, timeout_sec=None):
        raise RuntimeError('Unable to convert call argument')
    monkeypatch.setattr(rclpy, 'spin_once', spin_once)
    with pytest.raises(RuntimeError, match='Unable to convert'):
        spin_until(node, lambda: False)
    assert rclpy.ok()
