"""node18's note: keys can be revised twice (recursive -> likely -> confirmed), and a node remembers across checks
what it was told.  An old revision replayed under a new file name (a mirror, a cache, a host serving yesterday's
file again) after a more certain one: the node took it as an update and remembered the key as the older, less
certain type (a confirmed F1 told "likely" again).  The server's own files only move up the ladder; a node never
steps a key's remembered report type down from a file it has already taken a higher one from."""

from __future__ import annotations

from pathlib import Path

from mock_exports import make_world, run_checks, signed_file

from bluezone.keyformat.keys import REPORT_TYPE_CONFIRMED, REPORT_TYPE_LIKELY, REPORT_TYPE_RECURSIVE, REPORT_TYPE_REVOKED


def _replayed(tmp_path: Path, last: int) -> list[dict]:
    """Four checks: every key recursive (F2s), then revised likely, then to ``last``; then the likely revision's
    file again under a new name."""
    keys = make_world(tmp_path / "store.db")
    keys["report_type"] = REPORT_TYPE_RECURSIVE
    every = list(range(len(keys)))
    likely = signed_file(keys, [], [(k, REPORT_TYPE_LIKELY) for k in every])
    files = {
        "1000-00001.zip": signed_file(keys, every, []),
        "1001-00001.zip": likely,
        "1002-00001.zip": signed_file(keys, [], [(k, last) for k in every]),
        "1003-00001.zip": likely,  # the likely revision again, under a name not seen
    }
    return run_checks(tmp_path / "store.db", files, [[name] for name in files])


def test_an_old_revision_replayed_under_a_new_name_does_not_step_the_key_down(tmp_path: Path) -> None:
    reports = _replayed(tmp_path, REPORT_TYPE_CONFIRMED)
    first = reports[0]["exposures"]
    assert first and {e["report_type"] for e in first} == {REPORT_TYPE_RECURSIVE}
    assert {e["report_type"] for e in reports[1]["updated"]} == {REPORT_TYPE_LIKELY}  # up the ladder: told
    assert {e["report_type"] for e in reports[2]["updated"]} == {REPORT_TYPE_CONFIRMED}
    assert reports[3]["updated"] == [] and reports[3]["exposures"] == []  # was: every one "updated" to likely
    in_force = reports[3]["earlier_exposures"]
    assert len(in_force) == len(first) and {e["report_type"] for e in in_force} == {REPORT_TYPE_CONFIRMED}


def test_an_old_revision_replayed_after_the_key_was_withdrawn_does_not_bring_it_back(tmp_path: Path) -> None:
    reports = _replayed(tmp_path, REPORT_TYPE_REVOKED)
    assert len(reports[2]["withdrawn"]) == len(reports[0]["exposures"]) > 0
    assert reports[3]["updated"] == [] and reports[3]["earlier_exposures"] == []


def test_a_revision_is_told_as_updated_once_per_real_change(tmp_path: Path) -> None:
    """Likely keys confirmed, the confirming file replayed under two new names (attack20: every exposure "updated"
    again at each replay, 12 of 12), then confirmed again at another transmission risk: a real change, told."""
    keys = make_world(tmp_path / "store.db")
    keys["report_type"] = REPORT_TYPE_LIKELY
    every = list(range(len(keys)))
    confirming = signed_file(keys, [], [(k, REPORT_TYPE_CONFIRMED) for k in every])
    riskier = keys.copy()
    riskier["transmission_risk"] = keys["transmission_risk"] % 8 + 1  # another level, 1-8
    files = {
        "1000-00001.zip": signed_file(keys, every, []),
        "1001-00001.zip": confirming,
        "1002-00001.zip": confirming,  # the same revision under a name not seen
        "1003-00001.zip": confirming,
        "1004-00001.zip": signed_file(riskier, [], [(k, REPORT_TYPE_CONFIRMED) for k in every]),
    }
    reports = run_checks(tmp_path / "store.db", files, [[name] for name in files])
    first = reports[0]["exposures"]
    assert first and {e["report_type"] for e in first} == {REPORT_TYPE_LIKELY}
    assert [len(r["updated"]) for r in reports[1:]] == [len(first), 0, 0, len(first)]  # was: len(first) each time
    assert all(r["exposures"] == [] for r in reports[1:])
    for replay in reports[2:4]:  # still in force, as told
        assert {(e["report_type"], e["transmission_risk"]) for e in replay["earlier_exposures"]} == {
            (REPORT_TYPE_CONFIRMED, e["transmission_risk"]) for e in first}
    assert {e["transmission_risk"] for e in reports[4]["updated"]} == {t % 8 + 1 for t in {e["transmission_risk"] for e in first}}
