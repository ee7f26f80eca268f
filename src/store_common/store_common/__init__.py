"""Shared, ROS-free building blocks of the walk-out store: store description, protocol, stamps."""
