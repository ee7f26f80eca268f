"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("evaluate is not implemented yet")
