"""``upload`` without --yes asks before sending; with nothing to answer on stdin (a script, cron, a
pipe that is empty or closed) it said click's bare "Aborted!", exit 1: now one line saying to pass --yes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.store import SightingStore

NOW = 1_764_000_000.0 + 12 * 3600  # midday UTC


def _node(tmp_path: Path, today_too: bool) -> Path:
    db = tmp_path / "node.db"
    today = rolling_start(NOW)
    with SightingStore.open(db, purge_now=NOW) as store:
        days = [today - back * ROLLING_PERIOD for back in (3, 2, 1)] + ([today] if today_too else [])
        for i, start in enumerate(days):
            store.save_daily_key(DailyKey(bytes([i + 1]) * 16, start), created_at=NOW - 3600)
    return db


def _upload(db: Path, stdin: str, *extra: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", str(db), *extra],
        input=stdin, obj={"clock": VirtualClock(NOW)},
    )
    return result.exit_code, result.output.splitlines()


@pytest.mark.parametrize("today_too", [False, True], ids=["send-them", "todays-key"])
def test_no_answer_on_stdin_says_to_pass_yes(tmp_path: Path, today_too: bool) -> None:
    rc, lines = _upload(_node(tmp_path, today_too), "")
    assert rc == 2, lines
    assert lines[-1].startswith("Error: ") and "stdin is not a terminal: pass --yes" in lines[-1], lines
    assert not any("Aborted" in line for line in lines)


def test_an_answer_piped_in_is_still_taken(tmp_path: Path) -> None:
    """'n' piped in is the user's own no: exit 1, as at a terminal, saying that nothing went and the code
    can still be used (click's bare "Aborted!" said neither); 'y' goes on to send (and here finds no
    server at 127.0.0.1:9)."""
    db = _node(tmp_path, False)
    rc, lines = _upload(db, "n\n")
    assert rc == 1 and lines[-1] == "nothing sent: the code is not used up (it stays valid until it expires)", lines
    rc, lines = _upload(db, "y\n")
    assert rc != 0 and "stdin is not a terminal" not in "\n".join(lines) and "Aborted!" not in lines, lines


def test_answers_that_run_out_are_told_from_no_answers(tmp_path: Path) -> None:
    """'y' piped in answers "Is your day over?" and the input ends at "Send them?": it said "stdin is not a
    terminal" (true of the first answer too); now that the answers ran out, and that --yes alone would leave
    today's key, which the answer chose to send."""
    db = _node(tmp_path, True)
    rc, lines = _upload(db, "y\n")
    assert rc == 2, lines
    assert lines[-1].startswith(
        "Error: the input ended before upload's question 'Send them?' was answered (it held 1 answer(s), for the"
        " earlier question(s)): give each question its answer on a line of its own, or pass --yes --include-today"
    ), lines
    assert "not a terminal" not in lines[-1]
    rc, lines = _upload(db, "y\ny\n")  # both answered: it goes on to send (and finds no server at 127.0.0.1:9)
    assert rc != 0 and "input ended" not in "\n".join(lines) and "not a terminal" not in "\n".join(lines), lines


def test_no_answer_to_the_first_question_names_include_today(tmp_path: Path) -> None:
    rc, lines = _upload(_node(tmp_path, True), "")
    assert rc == 2 and "pass --yes to send without asking, with --include-today to send today's key too" in lines[-1]


def test_answers_piped_in_are_shown_after_their_questions(tmp_path: Path) -> None:
    """A pipe's answers are echoed by no terminal: the next line began after "[y/N]: " ("... sent too? [y/N]: About
    to send 2 daily key(s)"); now the answer taken is shown there.  Through the console script, whose stdin is a
    real pipe (click's test runner echoes its input itself, and is left to)."""
    import os
    import subprocess
    import sys
    import time

    now = time.time()  # the child reads the wall clock: keys of the days before yesterday's, so midnight moves nothing
    db = tmp_path / "node.db"
    with SightingStore.open(db, purge_now=now) as store:
        for back in (3, 2):
            store.save_daily_key(DailyKey(bytes([back]) * 16, rolling_start(now) - back * ROLLING_PERIOD),
                                 created_at=now - 3600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bluezone", "upload", "--server", "http://127.0.0.1:9", "--code", "12345678",
         "--db", str(db)], input="\n", capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    lines = done.stderr.splitlines()
    assert lines[0].startswith("About to send 2 daily key(s)"), lines
    assert lines[-2:] == ["Send them? [y/N]: n", "nothing sent: the code is not used up (it stays valid until it expires)"]
    assert done.returncode == 1, lines  # (an empty line: the default, no)


def test_a_piped_answer_that_is_not_one_is_said_once(tmp_path: Path) -> None:
    """'maybe' piped in made click say "Error: invalid input" and ask again on the same line, of an input nobody
    can correct (and with no more of it, end in "the input ended before ..."): now one line naming the question
    and the answer, exit 2, nothing sent."""
    db = _node(tmp_path, True)
    rc, lines = _upload(db, "maybe\ny\ny\n")
    assert rc == 2, lines
    assert lines[-1] == (
        "Error: 'maybe' is not an answer to upload's question \"Today's key is still in use. Is your day over (no more"
        " contacts today), so it can be sent too?\", and with no terminal it cannot be asked again: answer y or n on a"
        " line of its own, or pass --yes to send without asking, with --include-today to send today's key too"
        " (see 'cli upload --help')"
    ), lines
    assert not any("invalid input" in line for line in lines), lines
    rc, lines = _upload(db, "YES\n nah \n")
    assert rc == 2 and lines[-1].startswith("Error: 'nah' is not an answer to upload's question 'Send them?', and"), lines
    rc, lines = _upload(db, "Yes\n No\n")  # click's answers, in any case: the user's own no
    assert rc == 1 and lines[-1].startswith("nothing sent"), lines


def test_a_piped_answer_is_read_no_further_than_answer_limit(tmp_path: Path) -> None:
    """An answer is a few characters: a line past ANSWER_LIMIT is one line, exit 2, and not read on.  click's
    prompt (input()) read any line whole: ``upload < /dev/zero`` grew until out of memory (a MemoryError's line,
    exit 1, under ``ulimit -v``)."""
    db = _node(tmp_path, False)
    rc, lines = _upload(db, "y" * 5000 + "\ny\n")
    assert rc == 2, lines
    assert lines[-1].startswith(
        "Error: the answer to upload's question 'Send them?' is longer than 1024 characters (not read on): answer y or"
        " n on a line of its own, or pass --yes to send without asking"
    ), lines
    rc, lines = _upload(db, " " * 1000 + "n" + " " * 20 + "\n")  # a long line within the limit is still an answer
    assert rc == 1 and lines[-1].startswith("nothing sent"), lines


def test_an_endless_piped_line_ends_at_once(tmp_path: Path) -> None:
    """``< /dev/zero`` through the console script, its memory bounded as a ``ulimit -v`` would: one line, exit 2."""
    import os
    import resource
    import subprocess
    import sys
    import time

    now = time.time()  # the child reads the wall clock: a key of the days before yesterday's
    db = tmp_path / "node.db"
    with SightingStore.open(db, purge_now=now) as store:
        store.save_daily_key(DailyKey(bytes(16), rolling_start(now) - 3 * ROLLING_PERIOD), created_at=now - 3600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")}

    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    with open(os.devnull.replace("null", "zero"), "rb") as zeros:
        done = subprocess.run(
            [sys.executable, "-m", "bluezone", "upload", "--server", "http://127.0.0.1:9", "--code", "12345678",
             "--db", str(db)], stdin=zeros, capture_output=True, text=True, env=env, timeout=120, check=False,
            preexec_fn=bounded,
        )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, lines
    assert lines[-1].startswith("Error: the answer to upload's question 'Send them?' is longer than 1024 characters"), lines


def test_a_terminal_is_still_asked_again(tmp_path: Path) -> None:
    """At a terminal a wrong answer can be corrected: click's "Error: invalid input" and the question again."""
    import os
    import pty
    import subprocess
    import sys
    import time

    now = time.time()  # the child reads the wall clock: keys of the days before yesterday's, so midnight moves nothing
    db = tmp_path / "node.db"
    with SightingStore.open(db, purge_now=now) as store:
        store.save_daily_key(DailyKey(bytes(16), rolling_start(now) - 3 * ROLLING_PERIOD), created_at=now - 3600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")}
    terminal, stdin = pty.openpty()
    try:
        os.write(terminal, b"maybe\nn\n")
        done = subprocess.run(
            [sys.executable, "-m", "bluezone", "upload", "--server", "http://127.0.0.1:9", "--code", "12345678",
             "--db", str(db)], stdin=stdin, capture_output=True, text=True, env=env, timeout=120, check=False,
        )
    finally:
        os.close(stdin)
        os.close(terminal)
    lines = done.stderr.splitlines()
    assert lines[-2:] == ["Send them? [y/N]: Error: invalid input",  # (the terminal shows what is typed, not stderr)
                          "Send them? [y/N]: nothing sent: the code is not used up (it stays valid until it expires)"], lines
    assert done.returncode == 1, lines


def test_a_stdin_closed_at_start_has_no_answer(tmp_path: Path) -> None:
    """``upload <&-`` (a cron line, a service with stdin closed): Python starts with no sys.stdin, and the question
    was an AttributeError (a RuntimeError, "lost sys.stdin", before 235fced), exit 1: now the line saying to pass
    --yes, exit 2, as with an empty stdin."""
    import os
    import subprocess
    import sys
    import time

    now = time.time()  # the child reads the wall clock
    db = tmp_path / "node.db"
    with SightingStore.open(db, purge_now=now) as store:
        store.save_daily_key(DailyKey(bytes(16), rolling_start(now) - 3 * ROLLING_PERIOD), created_at=now - 3600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bluezone", "upload", "--server", "http://127.0.0.1:9", "--code", "12345678",
         "--db", str(db)], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120, check=False,
        preexec_fn=lambda: os.close(0),
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, lines
    assert lines[-1].startswith("Error: upload asks before sending but stdin is not a terminal: pass --yes"), lines
