"""node18's note: keys can be revised twice (recursive -> likely -> confirmed), and a node remembers across checks
what it was told.  An old revision replayed under a new file name (a mirror, a cache, a host serving yesterday's
file again) after a more certain one: the node took it as an update and remembered the key as the older, less
certain type (a confirmed F1 told "likely" again).  The server's own files only move up the ladder; a node never
steps a key's remembered report type down from a file it has already taken a higher one from."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mock_exports import make_world, run_checks, signed_file

from bluezone.keyformat.keys import (
    REPORT_TYPE_CERTAINTY,
    REPORT_TYPE_CONFIRMED,
    REPORT_TYPE_LIKELY,
    REPORT_TYPE_RECURSIVE,
    REPORT_TYPE_REVOKED,
)


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




def _world(tmp_path: Path) -> tuple[dict[str, bytes], dict[int, bytes]]:
    """A batch of likely keys (a first check's exposures), and two genuine files confirming them at transmission
    risks 3 and 5: what a mirror replays by turns under new names."""
    keys = make_world(tmp_path / "store.db")
    keys["report_type"] = REPORT_TYPE_LIKELY
    every = list(range(len(keys)))
    at_risk = {}
    for risk in (3, 5):
        revised = keys.copy()
        revised["transmission_risk"] = risk
        at_risk[risk] = signed_file(revised, [], [(k, REPORT_TYPE_CONFIRMED) for k in every])
    return {"1000-00001.zip": signed_file(keys, every, [])}, at_risk


def _listed(files: dict[str, bytes], at_risk: dict[int, bytes], risks_of_rounds: list[list[int]]) -> list[list[str]]:
    """Rounds of the files of ``risks_of_rounds``, each under a name not listed before (added to ``files``)."""
    rounds: list[list[str]] = []
    for risks in risks_of_rounds:
        rounds.append([])
        for risk in risks:
            rounds[-1].append(f"{1000 + len(files)}-00001.zip")
            files[rounds[-1][-1]] = at_risk[risk]
    return rounds


def _alternating(tmp_path: Path, risks_of_rounds: list[list[int]]) -> list[dict]:
    """The first check's report, then those of the rounds of ``risks_of_rounds``."""
    files, at_risk = _world(tmp_path)
    return run_checks(tmp_path / "store.db", files, [["1000-00001.zip"], *_listed(files, at_risk, risks_of_rounds)])


def test_two_revisions_replayed_alternately_are_updated_once_each(tmp_path: Path) -> None:
    """attack21: two genuine files of the same keys and type at transmission risks 3 and 5, replayed alternately
    under new names, were told "updated" at every check (a warning flipping back and forth at a mirror's will).  No
    signed time orders them (a file's timestamps are its keys' day), so each (type, risk) is told once; the node
    keeps the last told."""
    first, *reports = _alternating(tmp_path, [[3], [5], [3], [5], [3], [5]])
    n = len(first["exposures"])
    assert n > 0
    assert [len(r["updated"]) for r in reports] == [n, n, 0, 0, 0, 0]  # was: n at every check
    assert {e["transmission_risk"] for e in reports[1]["updated"]} == {5}
    for replay in reports[2:]:  # the last told stays in force, as told
        assert replay["exposures"] == [] and len(replay["earlier_exposures"]) == n
        assert {(e["report_type"], e["transmission_risk"]) for e in replay["earlier_exposures"]} == {(REPORT_TYPE_CONFIRMED, 5)}
        assert all(set(e) == set(first["exposures"][0]) for e in replay["earlier_exposures"])  # nothing more shown


def test_two_revisions_in_one_check_and_then_apart_are_updated_once_each(tmp_path: Path) -> None:
    """Both files in one check (the first listed wins, as for any key given twice), then each again, in either order."""
    first, *reports = _alternating(tmp_path, [[5, 3], [3, 5], [3], [5], [5, 3]])
    n = len(first["exposures"])
    assert [len(r["updated"]) for r in reports] == [n, n, 0, 0, 0]
    assert [{e["transmission_risk"] for e in r["updated"]} for r in reports[:2]] == [{5}, {3}]


def test_a_store_of_the_version_before_tells_each_replaced_risk_once_more(tmp_path: Path) -> None:
    """A store written before the pairs told were kept remembers only the one in force: the one it replaced is told
    once more after the upgrade, then no more."""
    files, at_risk = _world(tmp_path)
    first, *_ = run_checks(tmp_path / "store.db", files, [["1000-00001.zip"], *_listed(files, at_risk, [[3], [5]])])
    with sqlite3.connect(tmp_path / "store.db") as conn:  # as the version before wrote them
        assert conn.execute("UPDATE keyserver_exposures SET exposure = json_remove(exposure, '$.told_before')").rowcount
    reports = run_checks(tmp_path / "store.db", files, _listed(files, at_risk, [[3], [5], [3], [5]]))
    n = len(first["exposures"])
    assert [len(r["updated"]) for r in reports] == [n, 0, 0, 0]


#: Genuine revisions of the first batch's likely keys a mirror may replay: (report type, transmission risk).
STATEMENTS = [(REPORT_TYPE_LIKELY, 3), (REPORT_TYPE_CONFIRMED, 3), (REPORT_TYPE_CONFIRMED, 5), (REPORT_TYPE_RECURSIVE, 5)]


@given(st.lists(st.lists(st.integers(0, len(STATEMENTS) - 1), min_size=1, max_size=3), min_size=1, max_size=6))
@settings(max_examples=30, deadline=None)
def test_replays_in_any_order_tell_each_statement_once_and_never_step_down(rounds_of_statements: list[list[int]]) -> None:
    """Any order of genuine revisions, each round's under new names: each exposure is told at each (type, risk) once
    at most, never less certain than before, and what is in force is the last told."""
    with tempfile.TemporaryDirectory() as tmp:
        keys = make_world(Path(tmp) / "store.db")
        keys["report_type"] = REPORT_TYPE_LIKELY
        every = list(range(len(keys)))
        signed = []
        for report_type, risk in STATEMENTS:
            revised = keys.copy()
            revised["transmission_risk"] = risk
            signed.append(signed_file(revised, [], [(k, report_type) for k in every]))
        files = {"1000-00001.zip": signed_file(keys, every, [])}
        rounds = [["1000-00001.zip"]]
        for statements in rounds_of_statements:
            rounds.append([f"{1000 + len(files) + i}-00001.zip" for i in range(len(statements))])
            files.update(zip(rounds[-1], (signed[i] for i in statements)))
        first, *reports = run_checks(Path(tmp) / "store.db", files, rounds)
    told = {(e["date"], e["start"]): [(e["report_type"], e["transmission_risk"])] for e in first["exposures"]}  # by day, start
    for report in reports:
        for e in report["updated"]:
            told[e["date"], e["start"]].append((e["report_type"], e["transmission_risk"]))
        in_force = {(e["date"], e["start"]): e["report_type"] for e in [*report["updated"], *report["earlier_exposures"]]}
        assert in_force == {i: pairs[-1][0] for i, pairs in told.items()}  # the last told, nothing lost or doubled
    for pairs in told.values():
        assert len(set(pairs)) == len(pairs)  # each statement told once
        assert [REPORT_TYPE_CERTAINTY[t] for t, _ in pairs] == sorted(REPORT_TYPE_CERTAINTY[t] for t, _ in pairs)  # never down
