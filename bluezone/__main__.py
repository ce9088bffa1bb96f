"""``python -m bluezone`` and the ``bluezone`` console script: ``cli.main``, with a Ctrl-C while the
CLI's modules load (click and the rest, ~0.03 s before ``cli.main`` can catch one) said as it says it:
one line and exit 130, not a traceback."""

import sys


def main() -> None:
    """The ``bluezone`` console script."""
    try:
        from bluezone.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("\nInterrupted\n")  # (as bluezone.cli.interrupted, which is not loaded yet)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
