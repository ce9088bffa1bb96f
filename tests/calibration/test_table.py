"""Google's calibration table: the shipped file parses, look-ups normalise names, bad tables fail in one line."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluezone.calibration.table import (
    DEFAULT_TABLE,
    CalibrationTable,
    CalibrationTableError,
    UnknownDeviceError,
    default_table,
    lookup,
    normalise,
)

HEADER = "oem,model,rssi correction (android rssi + rssi correction = iphone rssi),tx (as iphone would report for same power),has direct measurement"


def test_the_shipped_table_is_googles_file_unchanged() -> None:
    data = resources.files("bluezone.calibration").joinpath("data", DEFAULT_TABLE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == "7737c38dfac36c439ffd9581e71522a42f71fc934083634e6ddbae3939fbf380"
    table = default_table()
    assert len(table) == 9896
    assert sum(r.source == "measured" for r in table.rows) == 313
    folder = resources.files("bluezone.calibration").joinpath("data")
    assert "Creative Commons Attribution 4.0" in folder.joinpath("LICENSE-CC-BY-4.0.txt").read_text(encoding="utf-8")
    assert "doug-leith/dublintram_gaen_dataset" in folder.joinpath("README.md").read_text(encoding="utf-8")


def test_lookups_of_the_datasets_phones() -> None:
    htc = lookup("HTC One M9")
    assert htc is not None and (htc.rssi_correction_db, htc.tx_power_dbm, htc.source) == (4, -30, "measured")
    asus = lookup("asus z00ad", "ASUS")  # case, space for "_": one model
    assert asus is not None and (asus.rssi_correction_db, asus.tx_power_dbm, asus.source) == (-6, -22, "estimated")
    assert lookup("gryphonelab") is None and lookup("N8") is None and lookup("") is None


def test_iphones_are_the_reference_and_their_tx_power_is_not_in_the_table() -> None:
    for model, maker in (("iPhone 11 Pro Max", None), ("iphone_6s", None), ("anything", "Apple")):
        found = lookup(model, maker)
        assert found is not None and found.rssi_correction_db == 0 and found.tx_power_dbm is None
        assert found.source == "reference"


def test_manufacturer_must_match_when_given_and_ambiguous_models_need_one() -> None:
    table = CalibrationTable.from_text(f"{HEADER}\nAcme,X1,3,-20,yes\nBolt,X1,5,-30,no\nAcme,Y2,1,-25,no\n")
    assert table.lookup("X1") is None  # two makers, two answers
    assert table.lookup("X1", "bolt").tx_power_dbm == -30  # type: ignore[union-attr]
    assert table.lookup("Y2", "Bolt") is None
    assert table.lookup("y-2").rssi_correction_db == 1  # type: ignore[union-attr]
    with pytest.raises(UnknownDeviceError, match="not in the calibration table"):
        table.require("Z9", "Acme")


def test_two_spellings_of_one_model_prefer_the_measured_row() -> None:
    table = CalibrationTable.from_text(f"{HEADER}\nXiaomi,MI 4C,-4,-21,no\nXiaomi,Mi 4c,-5,-27,yes\n")
    assert table.lookup("mi 4c", "xiaomi").tx_power_dbm == -27  # type: ignore[union-attr]
    first = CalibrationTable.from_text(f"{HEADER}\nXiaomi,MI 4C,-4,-21,no\nXiaomi,Mi 4c,-5,-27,no\n")
    assert first.lookup("mi 4c", "xiaomi").tx_power_dbm == -21  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "header"),
        ("make,model,a,b,c\nX,Y,1,2,yes\n", "header"),
        (f"{HEADER}\n", "no device rows"),
        (f"{HEADER}\nX,Y,1,-20\n", "4 fields"),
        (f"{HEADER}\nX,Y,one,-20,yes\n", "whole dB"),
        (f"{HEADER}\nX,Y,1.5,-20,yes\n", "whole dB"),
        (f"{HEADER}\nX,Y,99,-20,yes\n", "out of range"),
        (f"{HEADER}\nX,Y,1,-200,yes\n", "out of range"),
        (f"{HEADER}\nX,Y,1,-20,maybe\n", "yes or no"),
        (f"{HEADER}\n,Y,1,-20,yes\n", "empty manufacturer"),
    ],
)
def test_malformed_tables_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(CalibrationTableError, match=message) as err:
        CalibrationTable.from_text(text, "t.csv")
    assert "\n" not in str(err.value)


cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(rows=st.lists(st.lists(cell, min_size=0, max_size=7), max_size=6))
def test_any_rows_parse_or_fail_with_a_table_error(rows: list[list[str]]) -> None:
    text = HEADER + "\n" + "\n".join(",".join(r) for r in rows)
    try:
        table = CalibrationTable.from_text(text)
    except CalibrationTableError as exc:
        assert "\n" not in str(exc)
        return
    for row in table.rows:  # whatever parsed is within bounds and searchable
        assert -60 <= row.rssi_correction_db <= 60 and row.tx_power_dbm is not None and -100 <= row.tx_power_dbm <= 30
        assert table.lookup(row.model, row.manufacturer) is not None


@given(
    maker=st.text(alphabet="abcdefgh _-", min_size=1, max_size=10).filter(lambda s: normalise(s) and normalise(s) != "apple"),
    model=st.text(alphabet="xyz0123 _-", min_size=1, max_size=10).filter(lambda s: normalise(s) and not normalise(s).startswith("iphone")),
    correction=st.integers(-60, 60),
    tx=st.integers(-100, 30),
)
def test_a_row_is_found_under_any_spelling(maker: str, model: str, correction: int, tx: int) -> None:
    table = CalibrationTable.from_text(f'{HEADER}\n"{maker}","{model}",{correction},{tx},yes\n')
    found = table.lookup(model.upper().replace(" ", "_"), maker.swapcase())
    assert found is not None and (found.rssi_correction_db, found.tx_power_dbm) == (correction, tx)


def test_search_lists_matching_models_measured_first() -> None:
    found = default_table().search("pixel 4")
    assert [r.model for r in found][:2] == ["Pixel 4", "Pixel 4 XL"] and all(r.source == "measured" for r in found[:2])
    assert default_table().search("") == [] and default_table().search("no such phone") == []
    assert len(default_table().search("samsung", limit=5)) == 5


def test_a_table_saved_with_a_byte_order_mark_reads_as_the_same_table(tmp_path) -> None:
    """Google's CSV opened and saved again in a spreadsheet ('CSV UTF-8') starts with a byte order mark: it was
    refused ("header must start with oem,... got ['\\ufeffoem', ...]"), though nothing else in it had changed."""
    shipped = resources.files("bluezone.calibration").joinpath("data", DEFAULT_TABLE).read_bytes()
    saved = tmp_path / "saved.csv"
    saved.write_bytes(b"\xef\xbb\xbf" + shipped.replace(b"\n", b"\r\n"))
    again = CalibrationTable.from_path(saved)
    assert again.rows == default_table().rows
