"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("receipt_recorder is not implemented yet")
