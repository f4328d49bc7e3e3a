"""The `quantfleet` command: run | plan | render | generate | sandbox | calibrate.

Each subcommand lives in the module that owns the responsibility and exposes
`register(subparsers)`; this file only wires them, importing each lazily so the
operator never imports the calibration stack and `plan` never imports kopf.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module exposing register(subparsers) that sets `func` on its parser
SUBCOMMANDS: dict[str, str] = {
    "run": "quantfleet.controllers.runner",
    "plan": "quantfleet.plan_cli",
    "render": "quantfleet.render_cli",
    "generate": "quantfleet.generate_cli",
    "sandbox": "quantfleet.sandbox.cli",
    "calibrate": "quantfleet.calibrate.cli",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantfleet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, module in SUBCOMMANDS.items():
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
