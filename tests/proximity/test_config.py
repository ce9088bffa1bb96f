"""DaemonConfig: defaults, TOML, and one-line errors for typos and wrong types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bluezone.config import DaemonConfig
from bluezone.errors import ConfigError, InputError


def test_defaults_follow_gaen() -> None:
    c = DaemonConfig()
    assert (c.rpi_rotation_min, c.rpi_rotation_max) == (600.0, 1200.0)
    assert c.retention_days == 14 and c.status_interval == 60.0
    assert -50 <= c.tx_power <= 20  # a TX power Google would accept


def test_toml_top_level_and_daemon_table(tmp_path) -> None:
    flat = tmp_path / "flat.toml"
    flat.write_text("tx_power = -12\nflush_interval = 2\nrpi_rotation_min = 700.5\n")
    c = DaemonConfig.load(flat)
    assert c.tx_power == -12 and c.flush_interval == 2 and c.rpi_rotation_min == 700.5
    table = tmp_path / "table.toml"
    table.write_text("[daemon]\nqueue_size = 50\n")
    assert DaemonConfig.load(table).queue_size == 50


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tx_powr = -12\n", "unknown setting 'tx_powr'"),
        ('tx_power = "loud"\n', "tx_power must be int"),
        ("queue_size = 1.5\n", "queue_size must be int"),
        ("flush_interval = true\n", "flush_interval must be float"),
        ("tx_power = 300\n", "-50..20"),
        # every check shifted each attenuation by it: 127 (or 20 for -20) made phones 8 m and 25 m away F1s
        ("rssi_correction = 127\n", "rssi_correction must be -40..40 dB (what bluezone calibrate measures"),
        ("rssi_correction = -41\n", "rssi_correction must be -40..40 dB"),
        ("rpi_rotation_min = 900\nrpi_rotation_max = 600\n", "rpi_rotation_min <= rpi_rotation_max"),
        ("queue_size = 0\n", "at least 1"),
        ("status_interval = -1\n", "status_interval must be at least 1 s"),
        # busy loops: ~5,000 status lines a second into the journal, a purge without pause
        ("status_interval = 1e-9\n", "status_interval must be at least 1 s"),
        ("purge_interval = 0.001\n", "purge_interval must be at least 60 s"),
        ("flush_interval = 1e-9\n", "flush_interval must be at least 0.1 s"),
        ("rpi_rotation_min = 0.001\nrpi_rotation_max = 0.002\n", "rpi_rotation_min must be at least 1 s"),
        ("tx_power = \n", "not valid TOML"),
        ("[daemon]\nqueue_size = 5\n[other]\nx = 1\n", "under [daemon]"),
    ],
)
def test_bad_config_is_one_line_config_error(tmp_path, text: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        DaemonConfig.load(path)
    assert words in str(exc.value)
    assert "\n" not in str(exc.value).strip()
    assert isinstance(exc.value, InputError)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no config file at"):
        DaemonConfig.load(tmp_path / "nope.toml")


def test_proximity_all_is_complete() -> None:
    import bluezone.proximity as proximity

    assert all(hasattr(proximity, name) for name in proximity.__all__)
    public = {n for n in vars(proximity) if not n.startswith("_")} - {
        "backends", "backlog", "budget", "daemon", "emulation", "ingest", "radio", "sightings", "store", "doctor", "runner",
        "stopsignals", "cli",
    }
    assert public <= set(proximity.__all__), public - set(proximity.__all__)


@pytest.mark.parametrize(
    "text",
    ["rpi_rotation_max = inf", "rpi_rotation_min = 600\nrpi_rotation_max = nan", "flush_interval = nan",
     "status_interval = inf", "purge_interval = nan", f"flush_interval = {10**400}"],
)
def test_nan_and_inf_are_refused(tmp_path, text: str) -> None:
    """rpi_rotation_max = inf used to load and the daemon then never changed its RPI."""
    path = tmp_path / "d.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match="finite"):
        DaemonConfig.load(path)


@pytest.mark.parametrize(
    "text, words",
    [
        ("retention_days = 30\n", "retention_days is at most 14"),
        ("rpi_rotation_min = 600\nrpi_rotation_max = 86400\n", "rpi_rotation_max is at most 1200"),
        ("purge_interval = 1e9\n", "purge_interval is at most 86400"),
    ],
)
def test_privacy_promises_cannot_be_configured_away(tmp_path, text: str, words: str) -> None:
    """Keeping data a month, one RPI all day, or never purging while running would break the README's promises."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        DaemonConfig.load(path)


def test_stricter_privacy_settings_are_fine() -> None:
    c = DaemonConfig(retention_days=7, rpi_rotation_min=300.0, rpi_rotation_max=600.0, purge_interval=600.0)
    assert c.retention_days == 7 and c.rpi_rotation_max == 600.0


def test_a_bad_default_config_is_named_by_the_commands_that_read_it_unasked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bluezone check`, `doctor` and `run` read $XDG_CONFIG_HOME/bluezone/daemon.toml without being
    told to (calibrate writes it): a bad value there said only 'Error: config: tx_power must be ...'."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    default = tmp_path / "xdg" / "bluezone" / "daemon.toml"
    default.parent.mkdir(parents=True)
    default.write_text("tx_power = 99\n")
    said = f"config file {default}: tx_power must be -50..20 dBm (receivers ignore others), got 99"
    result = CliRunner().invoke(cli, ["run", "--backend", "emulated", "--db", str(tmp_path / "e.db"), "--duration", "1"], obj={})
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1] == f"Error: {said}"
    # doctor says it among its findings (it exited 2 at once, the other checks unmade), and fails
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    result = CliRunner().invoke(cli, ["doctor", "--json"], obj={})
    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks["daemon-config"]["status"] == "fail" and checks["daemon-config"]["detail"] == said
    assert "calibration" not in checks and "system-bus" in checks
    missing = CliRunner().invoke(cli, ["doctor", "--config", str(tmp_path / "typo.toml")], obj={})
    assert missing.exit_code == 2 and "no config file at" in missing.output


def test_a_newer_bluezones_setting_is_refused_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon.toml written by a newer bluezone stopped `check` with 'unknown setting' and a list of names:
    still refused (ignored, it could change a verdict), but the line says how to get past it, naming the file."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    default = tmp_path / "xdg" / "bluezone" / "daemon.toml"
    default.parent.mkdir(parents=True)
    default.write_text("[daemon]\ntx_power = -12\nrssi_smoothing = 3\n")
    before = default.read_bytes()
    keys = tmp_path / "keys.json"
    keys.write_text("[]")
    result = CliRunner().invoke(cli, ["check", "--keys", str(keys), "--db", str(tmp_path / "none.db")], obj={})
    line = result.output.strip()
    assert result.exit_code == 2 and "\n" not in line, result.output
    assert line.startswith(f"Error: config file {default}: unknown setting 'rssi_smoothing' (a setting of a newer ")
    assert f"upgrade bluezone, or remove it from {default}; known: " in line and "did you mean" not in line
    assert default.read_bytes() == before


def test_a_misspelt_setting_gets_the_name_it_is_close_to(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text("tx_powr = -12\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'tx_powr' \(did you mean 'tx_power'\? a setting of a newer"):
        DaemonConfig.load(path)
    with pytest.raises(ConfigError, match="or remove it from the config;"):  # no file to name
        DaemonConfig.from_dict({"tx_powr": -12})


@pytest.mark.parametrize("value", ["data", "./here", ""])
def test_a_relative_or_empty_xdg_home_is_ignored(value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """XDG_DATA_HOME=data put the store in ./data/bluezone of whatever folder a command ran in (the XDG spec:
    a relative path is invalid and ignored)."""
    from bluezone.cliconfig import config_path
    from bluezone.config import default_config_path
    from bluezone.proximity.store import default_db_path

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("BLUEZONE_CONFIG", raising=False)
    for variable in ("XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(variable, value)
    assert default_db_path() == tmp_path / ".local" / "share" / "bluezone" / "bluezone.db"
    assert default_config_path() == tmp_path / ".config" / "bluezone" / "daemon.toml"
    assert config_path() == tmp_path / ".config" / "bluezone" / "config.toml"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "abs"))
    assert default_db_path() == tmp_path / "abs" / "bluezone" / "bluezone.db"


def test_a_daemon_config_past_a_mebibyte_is_refused(tmp_path: Path) -> None:
    """Settings files are read up to MAX_SETTINGS_BYTES (1 MiB); 16 MiB of TOML took 40 s or more to parse here."""
    path = tmp_path / "daemon.toml"
    path.write_text("tx_power = -12\n" + ("#" + "x" * 1023 + "\n") * 1024)
    with pytest.raises(ConfigError, match=r"daemon.toml: config file too large \(over 1,048,576 bytes\)$"):
        DaemonConfig.load(path)
