"""What the command modules (``cli.py``, ``sim/cli.py``, ``server/cli.py``) share: parameter
types, and the clock seam (``obj["clock"]`` of the click context, the system clock by default),
so tests run commands at a chosen moment instead of whatever the wall clock says."""

from __future__ import annotations

import math
from typing import Any

import click

from bluezone.clock import Clock, SystemClock


class FloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan, which passes every range comparison
    (``--duration nan`` stopped the daemon at once, ``--minutes nan`` crashed the simulator)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def cli_clock() -> Clock:
    """The clock a command runs on: ``cli(obj={"clock": VirtualClock(t)})`` in tests."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    clock = obj.get("clock") if isinstance(obj, dict) else None
    return clock if clock is not None else SystemClock()


def jobs_option(func: Any) -> Any:
    """``--jobs N``: processes for deriving RPIs (default: every core this process may use)."""
    return click.option(
        "--jobs", "-j", type=click.IntRange(1), default=None,
        help="Processes for matching (default: every available core); results do not depend on it.",
    )(func)
