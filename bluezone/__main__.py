"""``python -m bluezone`` and the ``bluezone`` console script: ``cli.main``, with a Ctrl-C while the
CLI's modules load (click and the rest, ~0.03-0.07 s before ``cli.main`` can catch one) said as it says it:
one line and exit 130, not a traceback.  The Ctrl-C is held until they have loaded (``ctrl_c_deferred``; a
command's own module too, ``clitypes.LazyCommands``), not raised inside them: Python cannot raise out of a weak
reference's callback, such as the one importlib runs as each import's lock is freed, so one landing there was
lost ("Exception ignored in: ...", the command ran on to exit 0); and one leaving code run from a string (the
methods namedtuple and dataclasses make) left CPython's note of an unhandled Ctrl-C, which ended ``python -m
bluezone`` by SIGINT (-2) after its "Interrupted" (``exitnow.forget_unhandled_ctrl_c`` clears it on the way out).
Afterwards, in a command's own imports (a check's, while its store's thread imports too), ``sigint``'s handler
keeps a Ctrl-C out of importlib's own code.  It is ``main``'s first step, importing nothing but ``opcode``: importing
``signal`` and ``inthread`` (enum, typing, threading) first left Python's own handler ~7-9 ms into the ``try``, now
~0.8 ms (the console script at load 4; of 1,000 random Ctrl-Cs 15-45 ms into ``bluezone run``, 141 landed there
before, 23 now).

A Ctrl-C in Python's own start (``site`` and the ``.pth`` files it runs, runpy, the console script's ``import
re``: ~0.02-0.15 s) is beyond any Python code: CPython sets its SIGINT handler before it imports ``site``, and no
option of the ``python`` command puts that off (``PyConfig.install_signal_handlers`` is for embedders), so the
handler's KeyboardInterrupt comes out there as a traceback ("Fatal Python error: init_import_site" in ``site``).
Before the handler is set SIGINT ends the process silently, as a shell expects.  What the console script loads
before ``main``'s ``try`` (this package's ``__init__`` and ``lazyexports``) imports nothing else: ~0.8 ms.  A
launcher that starts Python with SIGINT blocked (``exec env --block-signal=INT python -m bluezone "$@"``, or one in
C) holds such a Ctrl-C until ``main`` unblocks it, inside its ``try``."""

import sys


def main() -> None:
    """The ``bluezone`` console script."""
    try:
        from bluezone.sigint import install_handler  # (it imports nothing Python has not loaded but opcode: ~1 ms)

        install_handler()  # a Ctrl-C inside importlib's own code, in the imports below too, raised once out of it
        import signal  # (here, not above: a Ctrl-C as it loads enum is said too, not a traceback out of runpy)

        from bluezone.inthread import ctrl_c_deferred

        with ctrl_c_deferred():  # a Ctrl-C as the modules load: raised once they have, never inside importlib
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # (one a launcher held, too)
            from bluezone.cli import main as cli_main
        cli_main()  # (a Ctrl-C before click's main has its own try, or after it: here)
    except KeyboardInterrupt:
        sys.stderr.write("\nInterrupted\n")  # (as bluezone.cli.interrupted, which may not be loaded)
        from bluezone.exitnow import forget_unhandled_ctrl_c

        forget_unhandled_ctrl_c()
        sys.exit(130)


if __name__ == "__main__":
    main()
