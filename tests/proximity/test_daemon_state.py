"""The daemon leaves its radio's state where ``bluezone status`` shows it (fixed address above all)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.proximity.backends.emulated import Air, EmulatedRadio
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

START = 1_795_089_600.0


class FixedAddressRadio(EmulatedRadio):
    """An emulated radio that, like BlueZ, cannot rotate its address."""

    rotates_address = False

    def health(self) -> dict[str, int | str | bool]:
        return {**super().health(), "rotates_address": False, "restarts": 2}


def _run(tmp_path: Path, radio_cls: type[EmulatedRadio]) -> Path:
    clock = VirtualClock(START)
    air = Air(clock, seed=1)
    path = tmp_path / "node.db"
    with SightingStore.open(path) as store:
        daemon = Daemon(radio_cls(air, "node", (0.0, 0.0)), store, clock)
        clock.run(daemon.run(duration=180))
    return path


def test_status_warns_when_the_address_cannot_rotate(tmp_path: Path) -> None:
    path = _run(tmp_path, FixedAddressRadio)
    runner = CliRunner()
    res = runner.invoke(cli, ["status", "--db", str(path)])
    assert res.exit_code == 0, res.output
    assert "address    NOT CHECKED" in res.output and "restarts 2" in res.output  # counters line
    info = json.loads(runner.invoke(cli, ["status", "--db", str(path), "--json"]).stdout)
    assert info["daemon"]["rotates_address"] is False and info["daemon"]["updated_at"] == START + 180


def test_status_is_quiet_when_the_address_rotates(tmp_path: Path) -> None:
    path = _run(tmp_path, EmulatedRadio)
    res = CliRunner().invoke(cli, ["status", "--db", str(path)])
    assert res.exit_code == 0 and "radio      emulated" in res.output and "FIXED" not in res.output
