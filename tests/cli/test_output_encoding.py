"""Output under any locale is written whole or refused in one line, never a traceback or click's generic message.
An ASCII stdout (PYTHONIOENCODING=ascii, a C locale outside Python's UTF-8 mode) was wrapped again by click, past
clioutput's Stdout: a reader gone was "Error: BrokenPipeError: [Errno 32] Broken pipe (run with --debug for
details)", exit 1, not 141 quietly (note27); text a Latin-1 stdout has no bytes for (a venue's "Sữa") was
"Error: UnicodeEncodeError: 'latin-1' codec can't encode character ...", the same generic line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli

NAME = "Cà phê Sữa"


@pytest.fixture(scope="module")
def checked_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store checked in (now, on the wall clock the child reads too) at a venue whose name is not ASCII."""
    tmp = tmp_path_factory.mktemp("encoding")
    made = CliRunner().invoke(cli, ["venue", "create", "--name", NAME, "--address", "1 Lê Lợi", "--out", str(tmp / "v")], obj={})
    assert made.exit_code == 0, made.output
    url = made.stdout.strip().splitlines()[-1]
    done = CliRunner().invoke(cli, ["checkin", url, "--db", str(tmp / "node.db")], obj={})
    assert done.exit_code == 0, done.output
    return tmp / "node.db"


def _checkins(db: Path, env: dict[str, str], stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEZONE_", "PYTHONIO", "LC_", "LANG"))}
    clean.pop("PYTHONUTF8", None)
    return subprocess.run(
        [sys.executable, "-m", "bluezone", "checkins", "--db", str(db)], stdout=stdout, stderr=subprocess.PIPE,
        env={**clean, **env}, timeout=120, check=False,
    )


ASCII = [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}]


@pytest.mark.parametrize("env", ASCII, ids=["PYTHONIOENCODING=ascii", "LC_ALL=C"])
def test_an_ascii_stdout_is_written_in_utf8_and_a_reader_gone_is_quiet(checked_in: Path, env: dict[str, str]) -> None:
    done = _checkins(checked_in, env)
    assert done.returncode == 0 and NAME.encode() in done.stdout, done.stderr
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the first write
    try:
        gone = _checkins(checked_in, env, stdout=write_end)
    finally:
        os.close(write_end)
    assert (gone.returncode, gone.stderr) == (141, b"")
    with open("/dev/full", "wb") as full:
        refused = _checkins(checked_in, env, stdout=full)
    assert (refused.returncode, refused.stderr) == (1, b"Error: cannot write the output: No space left on device\n")


def test_text_a_latin1_stdout_cannot_hold_is_one_line(checked_in: Path) -> None:
    done = _checkins(checked_in, {"PYTHONIOENCODING": "latin-1"})
    assert done.returncode == 1 and done.stdout == b"", done.stderr
    assert done.stderr.decode("latin-1").splitlines() == [
        "Error: cannot write the output: '\\u1eef' has no place in stdout's encoding (latin-1): use a UTF-8 locale"
        " (LANG=C.UTF-8) or PYTHONIOENCODING=utf-8"
    ]


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_help_under_a_narrow_encoding(encoding: str) -> None:
    """--help is written as the options are read, before any command: every group's help is whole, exit 0."""
    for group in ([], ["server"], ["venue"], ["keys"]):
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")} | {"PYTHONIOENCODING": encoding}
        done = subprocess.run([sys.executable, "-m", "bluezone", *group, "--help"], capture_output=True, env=env,
                              timeout=120, check=False)
        assert done.returncode == 0 and done.stderr == b"" and b"Usage: bluezone" in done.stdout, done.stderr


def test_a_lone_surrogate_is_not_blamed_on_the_locale() -> None:
    """A UTF-8 stdout refuses only a lone surrogate (an undecodable byte of a name, were one ever written
    unescaped): not told to use the UTF-8 locale it has."""
    from bluezone.clioutput import refusal_line

    assert refusal_line(UnicodeEncodeError("utf-8", "a\udcffb", 1, 2, "surrogates not allowed")) == (
        "Error: cannot write the output: '\\udcff' is not text (an undecodable byte)"
    )
    assert refusal_line(UnicodeEncodeError("cp1252", "Sữa", 1, 2, "character maps to <undefined>")).endswith(
        "'ữ' has no place in stdout's encoding (cp1252): use a UTF-8 locale (LANG=C.UTF-8) or PYTHONIOENCODING=utf-8"
    )


def test_stderr_under_an_ascii_locale_is_whole(tmp_path: Path) -> None:
    """Outside UTF-8 mode, stderr is written in UTF-8 as stdout is: an error line's own text ("Sữa") is whole, and
    the bytes of a name the locale cannot decode are escaped as printable_line escapes them, in the one-line error
    and in --debug's traceback alike (click's 'replace' made them "caf??.png" there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEZONE_", "PYTHONIO", "LC_", "LANG"))}
    env |= {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}

    def stderr(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "bluezone", *args, "--db", str(tmp_path / "visitor.db")],
                              capture_output=True, env=env, timeout=120, check=False)
        assert done.returncode in (1, 2) and done.stdout == b"", done.stderr
        return done.stderr.decode("utf-8").splitlines()

    (tmp_path / "bluezone").mkdir()
    (tmp_path / "bluezone" / "config.toml").write_text('[run]\nbackend = "Sữa"\n', encoding="utf-8")
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    assert stderr("run", "--duration", "1")[-1].startswith("Error: unknown radio backend 'Sữa': use emulated")
    photo = str(tmp_path / "café.png")
    said = f"cannot read photo {photo[:-8]}caf\\udcc3\\udca9.png: No such file or directory"
    assert stderr("checkin", "--image", photo) == [f"Error: {said}"]
    traceback = stderr("--debug", "checkin", "--image", photo)
    assert traceback[-1] == f"bluezone.errors.VenueError: {said}", traceback[-3:]
    assert not (tmp_path / "visitor.db").exists()


@pytest.mark.parametrize("encoding", ["idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"])
def test_a_codec_that_is_no_character_set_is_one_line_and_exit_2(checked_in: Path, encoding: str) -> None:
    """PYTHONIOENCODING=idna held each line back until a dot and lost the rest at exit: output cut short, exit 0
    (attack28); punycode ended every write with a '-'; undefined fails every write; unicode_escape wrote each line's
    end as backslash-n, all output one line, and raw_unicode_escape ữ as \\u1eef, exit 0 (attack29).  Now, before
    any command runs (--help too), one line in UTF-8 on stderr, exit 2."""
    said = (
        f"Error: stdout's encoding ({encoding.replace('_', '-')}, from PYTHONIOENCODING) does not write text as it is"
        " given: use a"
        " character set, PYTHONIOENCODING=utf-8 (or a UTF-8 locale, LANG=C.UTF-8)\n"
    ).encode()
    done = _checkins(checked_in, {"PYTHONIOENCODING": encoding})
    assert (done.returncode, done.stdout, done.stderr) == (2, b"", said)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")} | {"PYTHONIOENCODING": encoding}
    helped = subprocess.run([sys.executable, "-m", "bluezone", "--help"], capture_output=True, env=env, timeout=120, check=False)
    assert (helped.returncode, helped.stdout, helped.stderr) == (2, b"", said)


def test_every_character_set_python_has_is_written_as_given() -> None:
    """Only the codecs that are no character set are refused: EBCDIC, UTF-16's BOM, UTF-7, ISO-2022's shifts pass."""
    import codecs
    import encodings
    import pkgutil

    from bluezone.clioutput import _writes_as_given

    names = set(encodings.aliases.aliases.values()) | {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    text = set()
    for name in names:
        try:
            if codecs.lookup(name)._is_text_encoding:
                text.add(name)
        except LookupError:  # (a helper module of the package, or a codec of another platform: mbcs)
            continue
    assert {"cp037", "utf_16", "utf_7", "iso2022_jp_2", "hz", "latin_1", "shift_jis", "unicode_escape"} <= text
    refused = {name for name in text if not _writes_as_given(name)}
    assert refused == {"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"}
