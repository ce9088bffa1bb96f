"""CLI: keys derive, check (bad input paths), benchmark, through click's CliRunner."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.crypto.derivation import derivation_path

V = json.loads((Path(__file__).parents[1] / "data" / "vectors" / "gaen_crypto.json").read_text())


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.stdout, result.stderr


def test_derive_matches_vectors_text() -> None:
    code, out, _ = run("keys", "derive", "--tek", V["tek"], "--interval", str(V["interval_number"] + 3),
                       "--count", "2", "--metadata", V["metadata"])
    assert code == 0
    assert f"RPIK  {V['rpik']}" in out and f"AEMK  {V['aemk']}" in out
    assert f"RPI {V['rpis'][3]}  AEM {V['aems'][3]}" in out
    assert f"RPI {V['rpis'][4]}  AEM {V['aems'][4]}" in out


def test_derive_json_all_144() -> None:
    code, out, _ = run("keys", "derive", "--tek", V["tek"], "--interval", str(V["interval_number"]),
                       "--count", "144", "--metadata", V["metadata"], "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["rpik"], data["aemk"]) == (V["rpik"], V["aemk"])
    assert [r["rpi"] for r in data["intervals"]] == V["rpis"]
    assert [r["aem"] for r in data["intervals"]] == V["aems"]


@pytest.mark.parametrize(
    "args",
    [
        ["--tek", "zz" * 16, "--interval", "1"],
        ["--tek", "00" * 15, "--interval", "1"],
        ["--tek", "00" * 16, "--interval", "-1"],
        ["--tek", "00" * 16, "--interval", "1", "--metadata", "4008"],
        ["--tek", "00" * 16, "--interval", "1", "--count", "145"],
        # printed "interval 4294967438" beside the RPI of interval 142 (32 bits wrapped round)
        ["--tek", "00" * 16, "--interval", "4294967295", "--count", "144"],
        ["--interval", "1"],
    ],
)
def test_derive_bad_input_exits_2(args: list[str]) -> None:
    code, _, err = run("keys", "derive", *args)
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize("tek", [V["tek"][:-1], V["tek"] + "0"])
def test_derive_odd_digit_count_says_how_many(tek: str) -> None:
    """A digit missed or doubled is a hex string of the wrong length, not 'not hexadecimal'."""
    code, _, err = run("keys", "derive", "--tek", tek, "--interval", "1")
    assert code == 2 and "must be 32 hex digits" in err and f"got {len(tek)}" in err
    assert "not hexadecimal" not in err


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    db.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)  # untouched: never opened
    return db


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"temporaryExposureKeys": [{"key": "AAAA", "rollingStartNumber": 1, "rollingPeriod": 1}]}',
        b'{"temporaryExposureKeys": [{"key": "AAAAAAAAAAAAAAAAAAAAAA==", "rollingStartNumber": 1, "rollingPeriod": 200}]}',
        b"\x00\x01garbage",
        b"",
    ],
)
def test_check_malformed_key_file_exit_2_db_untouched(tmp_path: Path, content: bytes) -> None:
    db = _db(tmp_path)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    files_before = sorted(p.name for p in tmp_path.iterdir())
    keys = tmp_path / "keys.json"
    keys.write_bytes(content)
    code, out, err = run("check", "--keys", str(keys), "--db", str(db))
    assert code == 2
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*files_before, "keys.json"])  # no -wal/-shm


def test_check_needs_keys(tmp_path: Path) -> None:
    code, _, err = run("check", "--db", str(_db(tmp_path)))
    assert code == 2 and "--keys" in err


def test_check_missing_database_is_not_created(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"temporaryExposureKeys": []}')
    code, _, err = run("check", "--keys", str(keys), "--db", str(tmp_path / "absent.db"))
    assert code == 2 and "no sighting database" in err
    assert not (tmp_path / "absent.db").exists()


def test_check_unknown_scorer_exit_2(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"temporaryExposureKeys": []}')
    code, _, err = run("check", "--keys", str(keys), "--db", str(_db(tmp_path)), "--scorer", "nope")
    assert code == 2 and "unknown scorer" in err


def test_benchmark_small_json() -> None:
    code, out, _ = run(
        "benchmark", "--keys", "300", "--sightings", "5000", "--seed", "2", "--naive-sample", "5", "--repeats", "2", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["keys"] == 300 and data["sightings"] == 5000
    assert data["keys_per_second"] > 0 and data["speedup_vs_naive"] > 0
    assert data["matches"] == data["planted_keys"] * 15 > 0
    assert data["store_loading_included"] is False and data["repeats"] == 2
    assert data["speedup_vs_reasonable_naive"] > 0 and data["reasonable_naive_keys_per_second"] > 0
    assert data["jobs"] >= 1 and data["cores"] >= 1
    assert data["derivation"] == derivation_path()
    assert data["derivation"].startswith(("native (", "python ("))


def test_benchmark_jobs_reports_one_process_beside() -> None:
    code, out, _ = run(
        "benchmark", "--keys", "200", "--sightings", "3000", "--naive-sample", "2", "--repeats", "1", "--jobs", "2", "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["jobs"] == 2
    assert data["keys_per_second_one_job"] > 0 and data["speedup_vs_one_job"] > 0
    code, _, err = run("benchmark", "--keys", "10", "--jobs", "0")
    assert code == 2 and "--jobs" in err


def test_benchmark_runs_no_more_processes_than_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs 64 on two cores ran 64 processes (one match forked 63): capped as check caps it, and said
    on stderr so that the JSON on stdout stays the result alone."""
    import bluezone.matching.matcher as matcher

    monkeypatch.setattr(matcher, "available_cores", lambda: 2)
    args = ("benchmark", "--keys", "200", "--sightings", "3000", "--naive-sample", "2", "--repeats", "1", "--json")
    code, out, err = run(*args, "--jobs", "64")
    assert code == 0 and json.loads(out)["jobs"] == 2
    assert err == "bluezone benchmark: --jobs 64 is more than the 2 core(s) this process may use; using 2\n"
    code, out, err = run(*args, "--jobs", "2")
    assert code == 0 and json.loads(out)["jobs"] == 2 and err == ""


@pytest.mark.parametrize("size", [["--keys", str(10**12)], ["--keys", "10", "--sightings", str(10**12)]])
def test_benchmark_refuses_sizes_that_cannot_fit_in_memory_up_front(size: list[str]) -> None:
    """It ended in numpy's one-line MemoryError about one array, exit 1; now one line, exit 2, before
    anything is made (10**12 of either is terabytes on any machine)."""
    code, out, err = run("benchmark", *size)
    assert code == 2 and out == "", (out, err)
    [line] = err.splitlines()
    assert "need at least" in line and "GiB is available: give fewer --keys or --sightings" in line, line


def test_the_memory_check_leaves_normal_sizes_alone() -> None:
    from bluezone.errors import InputError
    from bluezone.matching.benchmark import check_fits

    check_fits(6_000_000, 1_000_000, available=1 * 2**30)  # issue 17's largest day beside a large store
    with pytest.raises(InputError, match="give fewer"):
        check_fits(6_000_000, 1_000_000, available=400 * 2**20)


def test_benchmark_text() -> None:
    code, out, _ = run("benchmark", "--keys", "50", "--sightings", "1000", "--naive-sample", "2")
    assert code == 0 and "keys/s" in out and "speedup" in out
    assert "RPI derivation: " in out


def test_benchmark_with_store() -> None:
    code, out, _ = run("benchmark", "--keys", "100", "--sightings", "3000", "--naive-sample", "2", "--with-store", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["store_load_seconds"] > 0 and 0 < data["keys_per_second_with_store"] < data["keys_per_second"]
