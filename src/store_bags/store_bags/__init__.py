"""Rosbag2 (MCAP) record/replay, bag info and scenario export of the walk-out store."""
