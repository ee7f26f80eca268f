"""Benchmark and simulation harness: offline runners, simulators, benchmark tools (no rclpy)."""
