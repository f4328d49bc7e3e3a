"""`quantfleet calibrate --recipe-json '<json>'`: the entry point of the calibration Job.

Exit codes: 0 published (manifest JSON on the termination log), 1 the calibration
failed a gate or crashed (plain-text reason on the termination log), 2 the recipe is
invalid. The operator reads the termination message either way.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from quantfleet.api.common import first_error
from quantfleet.api.recipe import CalibrationRecipe


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("calibrate", help="calibrate a quantized checkpoint (runs inside the calibration Job)")
    p.add_argument("--recipe-json", required=True, help="CalibrationRecipe as JSON (argv, no shell)")
    p.set_defaults(func=main)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("quantfleet.calibrate")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def main(args: argparse.Namespace) -> int:
    from quantfleet.calibrate.publish import write_termination_message

    _setup_logging()
    log = logging.getLogger("quantfleet.calibrate")
    try:
        recipe = CalibrationRecipe.from_json(args.recipe_json)
    except ValidationError as exc:
        reason = f"calibration failed: invalid recipe: {first_error(exc)}"
        log.error(reason)
        write_termination_message(reason)
        return 2
    from quantfleet.calibrate.run import CalibrationFailed, calibrate

    try:
        calibrate(recipe)
    except CalibrationFailed as exc:
        reason = f"calibration failed: {exc}"
        log.error(reason)
        write_termination_message(reason)
        return 1
    except Exception as exc:
        reason = f"calibration failed: {type(exc).__name__}: {exc}"
        log.exception(reason)
        write_termination_message(reason)
        return 1
    return 0
