"""JSON key files and Bluezone v3 F0 lists are parsed whole by ``json``, which makes a Python object
of every value: 2-3 bytes of file each (``{},`` or ``[],``) became ~70 bytes of memory, so a 20 MB
file peaked at 755 MB and one at the 256 MB size limit would take ~10 GB (the kernel's OOM killer,
not a clean error). Files holding more values than the largest valid input are refused unparsed."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from bluezone.errors import KeyFileError
from bluezone.keyformat.keyfile import dump_keys_json, parse_keys_json
from bluezone.keyformat.keys import MAX_JSON_VALUES, empty_keys, json_values
from bluezone.matching.bluezone3 import MAX_ENTRIES, parse_f0_list


def _peak(parse, data: bytes) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        with pytest.raises(KeyFileError, match="too many JSON values"):
            parse(data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("item", [b"{}", b"[]", b"0", b'"ab"', b'{"k":1}'])
def test_a_key_file_of_many_tiny_values_is_refused_unparsed(item: bytes) -> None:
    data = b'{"temporaryExposureKeys":[' + b",".join([item] * (MAX_JSON_VALUES + 1)) + b"]}"
    assert _peak(parse_keys_json, data) < 8 << 20, "parsed before it was refused"


def test_an_f0_list_of_many_tiny_values_is_refused_unparsed() -> None:
    data = b'{"data":[' + b",".join([b"{}"] * (10 * MAX_ENTRIES + 1)) + b"]}"
    assert _peak(parse_f0_list, data) < 8 << 20, "parsed before it was refused"


def test_the_count_bounds_what_json_makes() -> None:
    """Every value after the first is preceded by a comma or a colon, or is a container's first element."""
    for text in [b"0", b"[]", b"[1,2,[3,{}]]", b'{"a":1,"b":[true,null],"c":{"d":"e"}}', b'"x,y:z"']:
        import json

        def count(value: object) -> int:
            if isinstance(value, dict):
                return 1 + sum(1 + count(v) for v in value.values())
            if isinstance(value, list):
                return 1 + sum(count(v) for v in value)
            return 1

        assert json_values(text) >= count(json.loads(text))


def test_a_national_day_of_keys_as_json_still_reads() -> None:
    """358,105 keys (the largest real day), as bluezone writes JSON: under the limit."""
    keys = empty_keys(2_000)
    keys["key"] = np.frombuffer(np.random.default_rng(1).bytes(16 * len(keys)), "V16")
    keys["rolling_start"], keys["rolling_period"], keys["report_type"] = 2_940_000, 144, 1
    data = dump_keys_json(keys)
    assert json_values(data) * 358_105 // len(keys) < MAX_JSON_VALUES
    assert parse_keys_json(data).tobytes() == keys.tobytes()
