"""Human review of uncertain shelf events: queue, console, learning."""
