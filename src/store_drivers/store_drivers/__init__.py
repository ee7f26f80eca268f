"""Hardware drivers: plate controller (load cell) serial driver and gate QR-reader driver."""
