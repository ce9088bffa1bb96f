"""Ctrl-C while a module a command loads makes a class (a dataclass's fields are named then) reached the CLI
as "Error: RuntimeError: Error calling __set_name__ on 'Field' instance ..." and exit 1 on Python 3.11, which
wraps what ``__set_name__`` raises (seen at ~0.25 s into ``bluezone check``, 2 in 120 Ctrl-Cs): it is
Ctrl-C's one line and exit 130, as anywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import bluezone.proximity.store as store_package
from bluezone.cli import cli


def _class_made_under_ctrl_c(*args: object, **kwargs: object) -> None:
    class Interrupted:
        def __set_name__(self, owner: type, name: str) -> None:
            raise KeyboardInterrupt  # the SIGINT handler's, as it lands in dataclasses' __set_name__

    class Made:  # (made for its __set_name__ call)
        field = Interrupted()


def test_ctrl_c_while_a_class_is_made_is_one_line_and_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(store_package.SightingStore, "open", _class_made_under_ctrl_c)
    result = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 130 and result.stderr.split() == ["Interrupted"], result.stderr
