"""Store visualization: rviz MarkerArrays and a top-down PNG renderer."""
