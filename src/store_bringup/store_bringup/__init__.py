"""Launch files, node graph description, runner and configuration of the walk-out store."""
