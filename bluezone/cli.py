"""The ``bluezone`` command: thin click wrappers over library calls.

Every command that reports has ``--json``; errors become one line on stderr with exit
code 2 for bad input and 1 for other failures (``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from bluezone.errors import BluezoneError


class BluezoneGroup(click.Group):
    """Turns BluezoneError (and other failures) into one-line errors instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BluezoneError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the CLI
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
            ctx.exit(1)


@click.group(cls=BluezoneGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
@click.version_option(package_name="bluezone")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """bluezone: Bluetooth proximity contact detection, compatible with GAEN v1.2."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (bytes as hex are the caller's job)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def db_option(func: Any) -> Any:
    """``--db PATH``: the sighting store (default: under the XDG data directory)."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Sighting database (default: $XDG_DATA_HOME/bluezone/bluezone.db).",
    )(func)


def json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


# --- core commands are defined below, one section per area -------------------------------


def main() -> None:
    cli(obj={}, prog_name="bluezone")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
