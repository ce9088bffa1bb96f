"""packaging/bluezone.service (issue 14.17): no checkout assumed, the extra sandboxing, a command line the CLI takes."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.packaging.systemd_unit import unit_settings as _settings

PACKAGING = Path(__file__).parents[2] / "packaging"
UNIT = PACKAGING / "bluezone.service"


def test_the_unit_assumes_no_checkout_and_runs_what_the_cli_takes() -> None:
    from bluezone.cli import cli

    text = UNIT.read_text()
    assert "/opt/bluezone" not in text  # no checkout in /opt (ExecStart, Documentation)
    (exec_start,) = _settings(text)["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[:2] == ["bluezone", "run"]
    ctx = cli.commands["run"].make_context("run", argv[2:])
    assert ctx.params["backend"] == "bluez" and str(ctx.params["db_path"]) == "/var/lib/bluezone/bluezone.db"


def test_the_unit_has_the_extra_sandboxing() -> None:
    s = _settings(UNIT.read_text())
    expected = {
        "PrivateNetwork": "yes", "ProtectProc": "invisible", "RemoveIPC": "yes",
        "RestrictAddressFamilies": "AF_UNIX", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
        "ProtectSystem": "strict", "UMask": "0077", "StateDirectoryMode": "0700", "RestartPreventExitStatus": "2",
        "SupplementaryGroups": "bluetooth", "User": "bluezone",
    }
    assert {k: s.get(k, [None])[-1] for k in expected} == expected


def test_the_bumble_hci_socket_drop_in_turns_the_private_network_off() -> None:
    """AF_BLUETOOTH sockets exist only in the host's network namespace (the kernel's bt_sock_create
    refuses any other with EAFNOSUPPORT), so the hci-socket example must say PrivateNetwork=no."""
    text = UNIT.read_text()
    drop_in = text[text.index("for hci-socket"):text.index("or for a USB dongle")]
    assert "#   PrivateNetwork=no" in drop_in and "AF_BLUETOOTH" in drop_in


def test_sysusers_puts_the_user_in_the_bluetooth_group() -> None:
    lines = [line.split() for line in (PACKAGING / "bluezone.sysusers").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert ["m", "bluezone", "bluetooth"] in lines and lines[0][:2] == ["u", "bluezone"]
