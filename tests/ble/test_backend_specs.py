"""Backend specs for real radios: parsing, clear errors, and auto's advice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.errors import ConfigError, InputError, RadioUnavailableError
from bluezone.proximity.backends.bluez import BluezRadio
from bluezone.proximity.backends.bumble_radio import BumbleRadio
from bluezone.proximity.backends.real import is_real_spec, open_real_radio

from .conftest import BlueZoo


@pytest.mark.parametrize(
    ("spec", "adapter", "kind", "name"),
    [
        ("auto", None, BluezRadio, "bluez"),
        ("auto", "hci1", BluezRadio, "bluez:hci1"),
        ("bluez", None, BluezRadio, "bluez"),
        ("bluez:hci1", None, BluezRadio, "bluez:hci1"),
        ("bluez:hci1", "hci1", BluezRadio, "bluez:hci1"),
        ("bumble:usb:0", None, BumbleRadio, "bumble:usb:0"),
        ("bumble:hci-socket:1", None, BumbleRadio, "bumble:hci-socket:1"),
    ],
)
def test_specs(spec: str, adapter: str | None, kind: type, name: str) -> None:
    radio = open_real_radio(spec, adapter=adapter)
    assert isinstance(radio, kind) and radio.name == name
    assert is_real_spec(spec)


@pytest.mark.parametrize(
    ("spec", "adapter", "words"),
    [
        ("bluez:wlan0", None, "hci0"),
        ("bluez", "eth0", "hci0"),
        ("bluez:hci0", "hci1", "disagree"),
        ("bumble", None, "transport"),
        ("bumble:usb:0", "hci0", "--adapter"),
        ("auto:hci0", None, "no argument"),
        ("radio", None, "unknown"),
    ],
)
def test_bad_specs_are_input_errors(spec: str, adapter: str | None, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as exc:
        open_real_radio(spec, adapter=adapter)
    assert isinstance(exc.value, InputError)


def test_not_real_specs() -> None:
    assert not is_real_spec("emulated")


async def test_auto_without_bluetooth_names_every_way_out(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/none")
    with pytest.raises(RadioUnavailableError) as exc:
        await open_real_radio("auto").open()
    text = str(exc.value)
    assert exc.value.reason == "no-dbus"
    assert "bumble:usb:0" in text and "emulated" in text and "D-Bus" in text


async def test_auto_picks_the_first_powered_adapter(bluezoo: BlueZoo) -> None:
    await bluezoo.power_off(0)
    radio = open_real_radio("auto")
    async with radio:
        assert radio.health()["adapter"] == "hci1"


def test_bumble_not_installed_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # bumble is an extra ('bluezone[bumble]'): without it the backend was 'Error: ModuleNotFoundError: ...', exit 1
    monkeypatch.delitem(sys.modules, "bluezone.proximity.backends.bumble_radio")
    monkeypatch.setitem(sys.modules, "bumble", None)  # what a missing package looks like to import
    with pytest.raises(ConfigError, match=r"pip install 'bluezone\[bumble\]'"):
        open_real_radio("bumble:usb:0")
    result = CliRunner().invoke(cli, ["run", "--backend", "bumble:usb:0", "--db", str(tmp_path / "x.db"), "--duration", "1"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == ["Error: the bumble backend needs bumble: pip install 'bluezone[bumble]'"]
