"""The `quantfleet` command: run | plan | render | generate | calibrate.

Each subcommand lives in a module that exposes `register(subparsers)`; this file only wires
them, importing each lazily so the operator never imports the calibration stack and `plan`
never imports the Kubernetes client. The development tooling (sandbox, upstream readers) has
its own command, `quantfleet-dev`, built with the same `main`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module exposing register(subparsers) that sets `func` on its parser
SUBCOMMANDS: dict[str, str] = {
    "run": "quantfleet.cli.run",
    "plan": "quantfleet.cli.plan",
    "render": "quantfleet.cli.render",
    "generate": "quantfleet.cli.generate",
    "calibrate": "quantfleet.calibrate.cli",
}


def build_parser(
    argv: list[str], subcommands: dict[str, str] = SUBCOMMANDS, prog: str = "quantfleet"
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = argv[0] if argv and argv[0] in subcommands else None
    for name, module in subcommands.items():
        if wanted is not None and name != wanted:
            sub.add_parser(name)  # listed in --help, not imported
            continue
        try:
            importlib.import_module(module).register(sub)
        except ImportError as exc:
            p = sub.add_parser(name, help=f"(unavailable: {exc})")
            p.set_defaults(func=lambda _a, exc=exc: _unavailable(exc))
    return parser


def _unavailable(exc: ImportError) -> int:
    print(f"quantfleet: this subcommand needs packages that are not installed: {exc}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None, subcommands: dict[str, str] = SUBCOMMANDS, prog: str = "quantfleet") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv, subcommands, prog).parse_args(argv)
    return int(args.func(args) or 0)
