"""An F2 of a later check that is the same meeting as an F1 an earlier check told: not new, not another contact.

The demo's own order: Chi sat at the café with An (F0) and Binh.  Her first check tells her F1 (An's keys); Binh,
told F1 too, uploads with a recursive code, and Chi's next check matches Binh's keys over the same minutes.  It
read "1 close contact(s) (F1 0, F2 1)" and "new since the last check: yes": a new risk, where it is the sitting
she was told of (``levels.same_meetings_told``).  Through ``check --server`` on loopback, text and --json.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from server_helpers import cli_code, cli_export, run_cli

from bluezone.proximity.emulation import run_emulated

HOME = (5000.0, 0.0)


_run = run_cli


def _cafe(tmp_path: Path) -> tuple[dict[str, Path], dt.date]:
    """An (F0) and Binh at the café, Chi beside both for half an hour (Binh 5-35 min into it); Dung near Binh only,
    later and elsewhere (an F2 of another meeting)."""
    midnight = time.time() // 86400 * 86400
    start = midnight - 4 * 3600  # yesterday 20:00 UTC: every key of the scene is complete today
    at = lambda t: (t - start) / 60.0  # noqa: E731 - minutes into the scene
    positions = {
        "An": lambda t: (0.0, 0.0) if at(t) < 40 else HOME,
        "Binh": lambda t: (1.0, 0.0) if 5 <= at(t) < 35 else (200.0, 1.0) if 60 <= at(t) < 95 else (100.0, 0.0),
        "Chi": lambda t: (0.5, 1.0) if at(t) < 40 else (-300.0, 0.0),
        "Dung": lambda t: (200.0, 0.0) if 55 <= at(t) < 100 else (-600.0, 0.0),
    }
    paths = run_emulated(positions, tmp_path, start, 110 * 60, seed=7)
    return paths, dt.datetime.fromtimestamp(start, dt.UTC).date()


@pytest.mark.slow
def test_an_f2_of_the_cafe_sitting_told_as_f1_is_not_news_nor_another_contact(live_server: dict, tmp_path: Path) -> None:
    nodes, day = _cafe(tmp_path)
    url = live_server["url"]

    def code(*args: str) -> str:
        return cli_code(live_server, *args)

    def export() -> None:
        cli_export(live_server)

    def check(name: str, *args: str) -> tuple[str, dict]:
        rc, out, err = _run("check", "--server", url, "--db", str(nodes[name]), *args)
        assert rc == 0, err
        return out, (json.loads(out) if args else {})

    rc, _, err = _run("upload", "--server", url, "--code", code("--type", "confirmed"), "--db", str(nodes["An"]), "--yes")
    assert rc == 0, err
    export()
    out, _ = check("Chi")
    assert "1 close contact(s) (F1)" in out and "new since the last check: yes" in out, out
    for name in ("Binh", "Dung"):  # Dung's first check (nothing: An's keys) so the next one is a later check too
        check(name)
    rc, _, err = _run("upload", "--server", url, "--code", code("--type", "recursive", "--exposure-date", day.isoformat()),
                      "--db", str(nodes["Binh"]), "--yes", "--exposure-date", day.isoformat())
    assert rc == 0, err
    export()

    # the same state twice, for the text and for --json (a check remembers what it told: the next finds nothing new)
    nodes["Chi (text)"] = tmp_path / "text" / nodes["Chi"].name
    nodes["Chi (text)"].parent.mkdir()
    for part in nodes["Chi"].parent.glob(f"{nodes['Chi'].name}*"):  # the store and any -wal, -shm beside it
        shutil.copy2(part, nodes["Chi (text)"].parent / part.name)
    _, data = check("Chi", "--json")
    close = [e for e in data["exposures"] if e["close_contact"]]
    assert [(e["level"], e["contact_of"]) for e in close] == [("F2", "F1")], data["exposures"]
    earlier = data["earlier_exposures"]
    assert not data["new_close_contact"] and not data["new_to_act_on"]  # were: true (the cron recipe mailed it)
    assert data["close_contacts"] == 0 and data["close_contact"]  # still an F1 (the earlier one), nothing new
    assert close[0]["same_meeting_as_earlier"] == [e["level"] for e in earlier].index("F1")

    out, _ = check("Chi (text)")
    assert "no new close contact (an F2 of the F1 meeting told before)" in out, out
    assert f"F2  (a close contact of a close contact)  (the same meeting as the F1 of {day} " in out, out
    assert "reported by an earlier check: the case's close contact was there too; not another contact)" in out
    assert "Close contact now: yes, F1 (within the last 14 days); new since the last check: nothing new" in out, out
    assert out.splitlines()[-1].startswith("What now: you were near someone who tested positive"), out
    # and from then on, among the exposures reported before: listed with its F1, one close contact
    out, _ = check("Chi (text)")
    assert "no new batches since the last check" in out, out
    assert re.search(rf"F2  \(reported by an earlier check\)  \(the same meeting as the F1 of {day} \d\d:\d\d-", out), out
    assert "2 exposure(s) reported before still in force (14 days), 1 close contact(s)" in out, out
    assert "new since the last check: nothing new" in out

    # an F2 of another meeting (Dung met Binh later, away from the café) is news, as before
    _, dung = check("Dung", "--json")
    assert [e["level"] for e in dung["exposures"] if e["close_contact"]] == ["F2"]
    assert "same_meeting_as_earlier" not in dung["exposures"][0] and dung["new_close_contact"]
