"""Shared, ROS-free building blocks of the walk-out store: the store description and time helpers."""
