"""What the command modules (``cli.py``, ``sim/cli.py``, ``server/cli.py``) share: the
``--json`` and ``--db`` options, parameter types, JSON output, and the clock seam
(``obj["clock"]`` of the click context, the system clock by default), so tests run commands
at a chosen moment instead of whatever the wall clock says."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from bluezone.inthread import ctrl_c_deferred
from bluezone.printable import printable_line

if TYPE_CHECKING:
    from bluezone.clock import Clock


def make_writable_dir(path: Path, what: str, option: str) -> None:
    """Make ``path`` (the ``what`` directory given by ``option``) now, or find it writable: one that
    cannot be is one line before the work starts, not a traceback after it."""
    from bluezone.errors import InputError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the {what} directory {path}: {exc.strerror or exc} (check {option})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"cannot write into the {what} directory {path}: permission denied (check {option})")


class OnceOption(click.Option):
    """An option that takes one value and says so when given twice on the command line: click keeps the
    last without a word, so `check --keys a.zip --keys b.zip` matched b.zip alone and reported no
    exposure from a.zip.  The environment and the config file still give one value, as before."""

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        parser.add_option(obj=self, opts=self.opts, dest=self.name, action="append", nargs=self.nargs)

    def consume_value(self, ctx: click.Context, opts: Mapping[str, Any]) -> Any:
        given = opts.get(str(self.name))
        if isinstance(given, list):
            if len(given) > 1:
                raise click.BadParameter(f"given {len(given)} times: it takes one", ctx=ctx, param=self)
            opts = {**opts, str(self.name): given[0]}
        return super().consume_value(ctx, opts)


class FloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan, which passes every range comparison
    (``--duration nan`` stopped the daemon at once, ``--minutes nan`` crashed the simulator)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def _given_clock() -> Clock | None:
    """The clock a test gave the command (``cli(obj={"clock": VirtualClock(t)})``), if any."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj.get("clock") if isinstance(obj, dict) else None


def cli_clock() -> Clock:
    """The clock a command runs on: ``cli(obj={"clock": VirtualClock(t)})`` in tests."""
    clock = _given_clock()
    if clock is not None:
        return clock
    from bluezone.clock import SystemClock  # here: the clock module loads asyncio, which most commands never use

    return SystemClock()


def cli_now() -> float:
    """``cli_clock().now()``, without importing the clock module (and asyncio) for the wall clock:
    ``bluezone check`` reads the time only to purge the store it opens."""
    clock = _given_clock()
    return time.time() if clock is None else clock.now()


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's subcommands, some given as ``"module:attribute"`` and imported only when first
    looked up, so that ``bluezone check`` does not import the simulator, the key server or the
    venue posters.  ``in``, ``len`` and iteration import nothing; ``on_import(name, command)``
    runs once for each command imported."""

    def __init__(
        self,
        commands: Mapping[str, click.Command],
        lazy: Mapping[str, str],
        on_import: Callable[[str, click.Command], None] = lambda name, command: None,
    ) -> None:
        self._commands = dict(commands)
        self._lazy = {name: target for name, target in lazy.items() if name not in self._commands}
        self._on_import = on_import

    def imported(self) -> dict[str, click.Command]:
        """The commands imported so far."""
        return dict(self._commands)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._commands and name in self._lazy:
            module, _, attribute = self._lazy[name].partition(":")
            with ctrl_c_deferred():  # a Ctrl-C as it loads: raised once it has, never inside importlib (``__main__``)
                command = getattr(importlib.import_module(module), attribute)  # a failure leaves it listed
            del self._lazy[name]
            self._commands[name] = command
            self._on_import(name, command)
        return self._commands[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._lazy.pop(name, None)
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        if self._lazy.pop(name, None) is None:
            del self._commands[name]

    def __contains__(self, name: object) -> bool:
        return name in self._commands or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter([*self._commands, *self._lazy])

    def __len__(self) -> int:
        return len(self._commands) + len(self._lazy)


def jobs_option(func: Any) -> Any:
    """``--jobs N``: processes for deriving RPIs (default: every core this process may use)."""
    return click.option(
        "--jobs", "-j", type=click.IntRange(1), default=None,
        help="Processes for matching (default and at most: every available core); results do not depend on it.",
    )(func)
def json_option(func: Any = None, *, help: str = "Print JSON for scripts.") -> Any:
    """``--json`` (``as_json``): print the command's result as JSON; ``@json_option`` or
    ``@json_option(help=...)``."""
    decorator = click.option("--json", "as_json", is_flag=True, help=help)
    return decorator if func is None else decorator(func)


#: ``obj`` key of the root context: the command has closed all it opened, so the console script may end the
#: process at once when it returns (``bluezone.cli.main``).
QUICK_EXIT = "bluezone.quick_exit"


def end_quickly() -> None:
    """Let the console script end this process as soon as the command returns, without the interpreter's
    teardown (every object of every module freed one by one: 0.01-0.03 s of a check's one-thread end) but
    with its output flushed and the atexit handlers run.  Only for a command that closes every store,
    file, thread and worker it opens itself (``with``), so that nothing is left for that teardown."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict):
        obj[QUICK_EXIT] = True


#: ``ctx.meta`` key (shared by a command's whole context tree): the context and parameter that gave
#: ``--db`` its value, so an error about the database can say where it was set (cliconfig.value_origin).
DB_ORIGIN = "bluezone.db_origin"


def _note_db_origin(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    ctx.meta[DB_ORIGIN] = (ctx, param) if value is not None else None
    return value


def db_option(func: Any) -> Any:
    """``--db PATH`` (``db_path``): this device's sighting store (default: under the XDG data directory)."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        callback=_note_db_origin,
        help="Sighting database (default: $XDG_DATA_HOME/bluezone/bluezone.db).",
    )(func)


def nothing_sent() -> NoReturn:
    """``upload`` or ``venue warn`` answered no: say that nothing left the device and that the code can
    still be used (click's bare "Aborted!" said neither); exit 1, as click's abort."""
    click.echo("nothing sent: the code is not used up (it stays valid until it expires)", err=True)
    sys.exit(1)


#: ``ctx.meta`` key: how many of a command's questions stdin has answered so far (a script's answers
#: that ran out before the last question are told apart from a stdin that gave none).
ANSWERS_READ = "bluezone.answers_read"


def ask_before_sending(
    command: str, question: str, default: bool = False, instead: str = "--yes to send without asking"
) -> bool:
    """``upload``'s or ``venue warn``'s question, answered on stdin.  With nothing to read there (no
    terminal, stdin empty or closed) one line saying what to pass (``instead``), exit 2, instead of click's
    bare "Aborted!", exit 1; when earlier questions took answers from it, the line says the answers ran out.
    A piped answer that is not one is said in one line, exit 2: click asked again on the same line, of an input
    nobody can correct."""
    meta = click.get_current_context().meta
    piped = not stdin_is_a_terminal()
    try:
        answer = _piped_answer(question, default, command, instead) if piped else click.confirm(question, default=default, err=True)
    except _NotAnAnswer as exc:
        click.echo(printable_line(exc.given), err=True)  # shown after its question, as an answer taken is
        raise click.UsageError(
            f"{exc.given.strip()[:40]!r} is not an answer to {command}'s question {question!r}, and"
            f" with no terminal it cannot be asked again: answer y or n on a line of its own, or pass {instead}"
        ) from None
    except click.Abort:
        if stdin_is_a_terminal():  # Ctrl-C or Ctrl-D at a terminal: the user's own abort
            raise
        click.echo(err=True)  # end the unanswered question's line
        if answered := meta.get(ANSWERS_READ, 0):
            raise click.UsageError(
                f"the input ended before {command}'s question {question!r} was answered (it held {answered}"
                f" answer(s), for the earlier question(s)): give each question its answer on a line of its own,"
                f" or pass {instead}"
            ) from None
        raise click.UsageError(
            f"{command} asks before sending but stdin is not a terminal: pass {instead}"
            " (or run it on a terminal to confirm)"
        ) from None
    meta[ANSWERS_READ] = meta.get(ANSWERS_READ, 0) + 1
    if piped:  # the answer taken, shown after its question: the next line began after "[y/N]: "
        click.echo("y" if answer else "n", err=True)
    return answer


def stdin_is_a_terminal() -> bool:
    """Whether stdin is a terminal: a stdin closed when the command started (``<&-``, sys.stdin None) is none, and
    has nothing to answer with (it was an AttributeError, exit 1)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # (no stdin, or one closed since)
        return False


class _NotAnAnswer(Exception):
    """A line read from a stdin that is no terminal, for a yes/no question, that is neither."""

    def __init__(self, given: str) -> None:
        self.given = given


def _piped_answer(question: str, default: bool, command: str, instead: str) -> bool:
    """``question`` answered by one line of a stdin that is no terminal, read as click.confirm reads it (y, yes, n,
    no in any case, or nothing for ``default``); anything else is ``_NotAnAnswer``, not asked again."""
    given = read_answer(
        f"{question} [{'Y/n' if default else 'y/N'}]: ", f"the answer to {command}'s question {question!r}",
        f"answer y or n on a line of its own, or pass {instead}",
    )
    reply = given.lower().strip()
    if reply in ("y", "yes", "n", "no", ""):
        return reply.startswith("y") if reply else default
    raise _NotAnAnswer(given)


#: The longest line a question's answer may be (a yes or no, an RSSI reading): read no further than this.
ANSWER_LIMIT = 1024


def read_answer(prompt: str, what: str, advice: str) -> str:
    """One line of stdin, without its line end, answering ``prompt`` (shown on stderr first).  A line longer than
    ANSWER_LIMIT is one line's usage error naming ``what`` and giving ``advice``, the rest left unread:
    click.prompt (Python's input()) read a line of any length, and ``< /dev/zero`` grew until out of memory.
    The input's end or Ctrl-C is click.Abort, as in click.prompt."""
    click.echo(prompt, nl=False, err=True)
    try:
        line = sys.stdin.readline(ANSWER_LIMIT + 1)
    except (KeyboardInterrupt, EOFError, AttributeError, ValueError):  # (no stdin, or a closed one: nothing to read)
        raise click.Abort() from None
    if not line:
        raise click.Abort()
    if len(line) > ANSWER_LIMIT and not line.endswith("\n"):
        click.echo(err=True)  # end the question's line
        raise click.UsageError(f"{what} is longer than {ANSWER_LIMIT} characters (not read on): {advice}")
    return line.removesuffix("\n")


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (bytes as hex are the caller's job)."""
    click.echo(json_text(data))


def json_text(data: Any) -> str:
    """``data`` as ``--json`` prints it."""
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    """Click callback: a ``YYYY-MM-DD`` option as a date."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date (YYYY-MM-DD): {value!r}") from None
