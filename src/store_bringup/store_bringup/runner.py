"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("run_store is not implemented yet")
