"""``python -m bluezone`` and the ``bluezone`` console script: ``cli.main``, with a Ctrl-C while the
CLI's modules load (click and the rest, ~0.03 s before ``cli.main`` can catch one) said as it says it:
one line and exit 130, not a traceback.

A Ctrl-C in Python's own start (``site`` and the ``.pth`` files it runs, runpy, the console script's ``import
re``: ~0.02-0.15 s) is beyond any Python code: CPython sets its SIGINT handler before it imports ``site``, and no
option of the ``python`` command puts that off (``PyConfig.install_signal_handlers`` is for embedders), so the
handler's KeyboardInterrupt comes out there as a traceback ("Fatal Python error: init_import_site" in ``site``).
Before the handler is set SIGINT ends the process silently, as a shell expects.  A launcher that starts Python
with SIGINT blocked (``exec env --block-signal=INT python -m bluezone "$@"``, or one in C) holds such a Ctrl-C
until ``main`` unblocks it, inside its ``try``."""

import signal
import sys


def main() -> None:
    """The ``bluezone`` console script."""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a Ctrl-C a launcher held: raised here
        from bluezone.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("\nInterrupted\n")  # (as bluezone.cli.interrupted, which is not loaded yet)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
