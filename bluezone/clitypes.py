"""Click parameter types shared by the command modules (``cli.py``, ``sim/cli.py``, ``server/cli.py``)."""

from __future__ import annotations

import math
from typing import Any

import click


class FloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan, which passes every range comparison
    (``--duration nan`` stopped the daemon at once, ``--minutes nan`` crashed the simulator)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number
