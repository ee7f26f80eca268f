"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("loadcell_driver is not implemented yet")
