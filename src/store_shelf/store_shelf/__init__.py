"""Shelf events: settled weight-change detection per plate and product/count hypotheses."""
