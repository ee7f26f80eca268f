"""Placeholder: implemented by its owner."""


def main(args=None):
    raise SystemExit("generate_scenarios is not implemented yet")
