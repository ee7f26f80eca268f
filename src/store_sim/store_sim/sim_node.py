"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("sim is not implemented yet")
