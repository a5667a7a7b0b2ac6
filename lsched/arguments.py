"""argparse types for scripts built on lsched (the examples): a bad value is argparse's own
one-line usage error, exit code 2, as the `lsched` command gives, never a traceback."""

from __future__ import annotations

import argparse

from lsched.errors import LschedError
from lsched.scenario import load_scenario


def scenario_argument(text: str) -> str:
    """A scenario option (`--scenario`): the name as given once it loads."""
    try:
        load_scenario(text)
    except LschedError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def positive_int(text: str) -> int:
    """A count that must be at least 1 (steps, envs, seeds, iterations)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value
