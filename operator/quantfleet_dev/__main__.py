"""`quantfleet-dev` (or `python -m quantfleet_dev`): the development commands, never in the operator image."""

from __future__ import annotations

import sys

from quantfleet.cli import main as _main

SUBCOMMANDS: dict[str, str] = {
    "sandbox": "quantfleet_dev.sandbox.cli",
}


def main(argv: list[str] | None = None) -> int:
    return _main(argv, SUBCOMMANDS, prog="quantfleet-dev")


if __name__ == "__main__":
    sys.exit(main())
