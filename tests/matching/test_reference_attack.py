"""A nearby transmitter inventing weak RPIs must not make a far contact F1 through the same-minute reference.

attack15 (fifteenth session): every minute is judged against the receiver's other links heard in that
minute (receiver.py ``minute_reference``); weak invented company raises that reference, so a real link 8 m
away looks relatively near.  Here through the real daemons, emulated radio, store, key export and
``bluezone check``: the demo's café (research/reference_attack.py), Em 8 m from the F0 all hour, an
attacker beside Em whose RPIs Em hears at -99 dBm.  The shipped default is moved (it needs fresh seeds to
change, docs/simulation.md); each bound, set, keeps Em out while Binh, truly 0.8 m from the F0 for 35
minutes, stays an F1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock

from research_scripts import research

ROOT = Path(__file__).resolve().parents[2]


attack = research("reference_attack")


def check(dbs: dict[str, Path], tmp: Path, who: str, *settings: str) -> dict:
    """``bluezone keys export`` of An's keys, then ``bluezone check --json`` of ``who``'s store."""
    clock = {"clock": VirtualClock(attack.START + 7200)}
    keys = tmp / "an_keys.json"
    if not keys.exists():
        out = CliRunner().invoke(cli, ["keys", "export", "--days", "14", "--out", str(keys), "--db", str(dbs["An"])], obj=clock)
        assert out.exit_code == 0, out.stderr
    args = ["check", "--keys", str(keys), "--db", str(dbs[who]), "--json"]
    for setting in settings:
        args += ["--set", setting]
    out = CliRunner().invoke(cli, args, obj=clock)
    assert out.exit_code == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lifetime", "bound"),
    [
        (1, "reference_min_minutes=2"),  # RPIs invented a minute each: not company heard for two minutes
        (10, "minute_reference_near_share=0"),  # kept alive as a phone's: no minute moves toward "near"
        # kept alive: a minute moves toward "near" only as far as its second strongest other link (ref17)
        (10, "minute_reference_strongest=2 minute_reference_strongest_near_only=true minute_reference_near_share=0"),
    ],
)
def test_invented_weak_company_does_not_make_a_far_contact_f1_under_the_bound(tmp_path: Path, lifetime: int, bound: str) -> None:
    dbs = attack.attacked_café(tmp_path / "dbs", seed=1, per_minute=6, lifetime=lifetime, minutes=60.0)
    assert check(dbs, tmp_path, "Em")["close_contact"] is True  # the attack works on the shipped default
    em = check(dbs, tmp_path, "Em", *bound.split())
    assert em["close_contact"] is False and em["exposures"]  # Em did hear An, 8 m away
    assert check(dbs, tmp_path, "Binh", *bound.split())["close_contact"] is True


@pytest.mark.slow
def test_one_minute_rpis_get_past_the_two_minute_rule_once_kept_alive(tmp_path: Path) -> None:
    """What ``reference_min_minutes`` cannot do (docs/radio-model.md): the same RPIs sent two minutes
    running are company heard for two minutes."""
    dbs = attack.attacked_café(tmp_path / "dbs", seed=1, per_minute=6, lifetime=2, minutes=60.0)
    assert check(dbs, tmp_path, "Em", "reference_min_minutes=2")["close_contact"] is True
