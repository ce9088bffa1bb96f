"""packaging/bluezone.service lets the daemon read the kernel's clock state (attack19 on bc98cbd).

``CheckedClock`` asks the kernel once a minute whether the clock is synchronised (glibc's ``adjtimex`` is the
``clock_adjtime`` system call).  The unit's ``SystemCallFilter=@system-service`` is an allow-list without
``SystemCallErrorNumber=``, which kills the process (SIGSYS) on a call outside it, and ``clock_adjtime`` is not
in it (systemd's @clock); ``ProtectClock=yes`` refuses it (EPERM) even to read.  So the daemon died at start
under the shipped unit, restarted every 15 s.  The test puts the rules the unit makes for those two calls on a
real ``bluezone run`` (libseccomp, as systemd does), and the unit must not hide this boot's id from it."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.systemd_unit import unit_settings

UNIT = Path(__file__).parents[2] / "packaging" / "bluezone.service"
CLOCK_STATE_CALLS = ("adjtimex", "clock_adjtime")

#: In a child: the unit's rules for CLOCK_STATE_CALLS (argv[1]: "kill", "eperm" or "allow" for each, comma
#: separated), then glibc's adjtimex read-only, then `bluezone run` on the emulated radio for 2 s.
_CHILD = r"""
import ctypes, sys
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
actions = {"kill": 0x80000000, "eperm": 0x00050001}
ctx = ctypes.c_void_p(lib.seccomp_init(0x7FFF0000))
for name, rule in zip((b"adjtimex", b"clock_adjtime"), sys.argv[1].split(",")):
    if rule != "allow":
        assert lib.seccomp_rule_add(ctx, ctypes.c_uint32(actions[rule]), lib.seccomp_syscall_resolve_name(name), 0) == 0
assert lib.seccomp_load(ctx) == 0
libc = ctypes.CDLL(None, use_errno=True)
state = libc.adjtimex(ctypes.create_string_buffer(512))
print("adjtimex", state, ctypes.get_errno(), flush=True)
from bluezone.cli import main
sys.argv = ["bluezone", "run", "--backend", "emulated", "--duration", "2", "--db", sys.argv[2]]
main()
"""


def _rule(settings: dict[str, list[str]], call: str) -> str:
    """What the unit's filters do to ``call``: the harshest of ProtectClock's (EPERM) and the allow-list's (kill)."""
    allowed: set[str] = set()
    for line in settings.get("SystemCallFilter", []):
        if line.startswith("~"):
            continue
        allowed.update(line.split())
    if allowed and call not in allowed and "@clock" not in allowed:  # @system-service holds no @clock call
        return "kill"
    return "eperm" if settings.get("ProtectClock", ["no"])[-1] == "yes" else "allow"


def test_the_daemon_reads_the_clock_state_under_the_units_filters(tmp_path: Path) -> None:
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        pytest.skip("libseccomp is not installed")
    rules = ",".join(_rule(unit_settings(UNIT.read_text()), call) for call in CLOCK_STATE_CALLS)
    done = subprocess.run([sys.executable, "-c", _CHILD, rules, str(tmp_path / "me.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (rules, done.returncode, done.stderr[-2000:])  # -31: SIGSYS
    [state, errno] = [int(x) for x in done.stdout.splitlines()[0].split()[1:]]
    assert state >= 0, f"adjtimex refused (errno {errno}): the step of a synchronised clock would be believed"
    assert "stopped:" in done.stdout


def test_the_unit_leaves_this_boots_id_readable() -> None:
    """ProcSubset=pid hides /proc/sys: the daemon's report then named no boot, and no command (nor a restarted
    daemon) took its measured time."""
    assert unit_settings(UNIT.read_text()).get("ProcSubset", ["all"])[-1] != "pid"
