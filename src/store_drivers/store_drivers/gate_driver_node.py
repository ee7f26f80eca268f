"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("gate_driver is not implemented yet")
