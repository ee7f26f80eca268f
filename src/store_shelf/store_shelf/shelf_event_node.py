"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("shelf_events is not implemented yet")
