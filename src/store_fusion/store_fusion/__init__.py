"""Multi-view shopper tracking and weight + vision event fusion."""
