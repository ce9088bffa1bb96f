"""A signing_key.json given with --server-key whose key_id or key_version is no text (a list, a number, an
object) is a one-line input error naming the file.  It was taken as it was: the check downloaded and checked
every file, then failed pinning it ('node.db is not a usable sighting database: Error binding parameter 3:
type 'list' is not supported', exit 1), blaming the store for the key file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluezone.cli import cli
from bluezone.client.pinning import read_server_key
from bluezone.errors import InputError
from bluezone.proximity.store import SightingStore
from bluezone.server.signing import INFO_FILE, keygen

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def info(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("signing")
    keygen(out)
    return json.loads((out / INFO_FILE).read_text())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key_id=JSON, key_version=JSON)
def test_a_key_file_is_read_with_text_ids_or_refused_as_one_line(info: dict, tmp_path: Path, key_id, key_version) -> None:
    path = tmp_path / "signing_key.json"
    path.write_text(json.dumps({**info, "key_id": key_id, "key_version": key_version}))
    try:
        pinned = read_server_key(path)
    except InputError as exc:
        assert not (isinstance(key_id, (str, type(None))) and isinstance(key_version, (str, type(None))))
        assert str(exc) == f"{path}: 'key_id' and 'key_version' must be text, as `bluezone server keygen` writes them"
        return
    assert all(isinstance(v, (str, type(None))) for v in (pinned.key_id, pinned.key_version))  # what the store keeps
    assert (pinned.key_id, pinned.key_version) == (key_id, key_version)
    assert pinned.public_key == info["public_key"]


def test_check_with_such_a_key_file_is_exit_2_before_anything_is_fetched(info: dict, tmp_path: Path) -> None:
    key_file = tmp_path / "signing_key.json"
    key_file.write_text(json.dumps({**info, "key_id": [1, 2]}))
    db = tmp_path / "node.db"
    with SightingStore.open(db):
        pass
    before = db.read_bytes()
    result = CliRunner().invoke(cli, ["check", "--server", "http://127.0.0.1:9", "--server-key", str(key_file), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: {key_file}: 'key_id' and 'key_version' must be text, as `bluezone server keygen` writes them\n"
    assert db.read_bytes() == before
