"""`bluezone server revoke-code`: a code issued by mistake (wrong person, test type or date) is withdrawn
before it is used; an upload with it is refused with its own reason.  It used to stay good for its
whole lifetime (a day for a long code)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from server_helpers import KEY, NOW
from starlette.testclient import TestClient

from bluezone.cli import cli
from bluezone.client.keyserver import KeyServerClient
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import InputError, PublishError, UploadRefusedError
from bluezone.keyformat.keys import empty_keys
from bluezone.server.app import create_app
from bluezone.client.uploading import check_code
from bluezone.server.codes import SHORT, CodeKey, code_mistake, grouped, issue_code, normal_code, revoke_code
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.storage import Storage, open_storage


def _body(code: str, key: bytes = b"\x01" * 16) -> bytes:
    day = rolling_start(NOW) - ROLLING_PERIOD
    entry = {"key": base64.b64encode(key).decode(), "rollingStartNumber": day}
    return json.dumps({"temporaryExposureKeys": [entry], "verificationPayload": code}).encode()


def _refusal(storage: Storage, code: str, at: float = NOW + 60) -> str:
    with pytest.raises(PublishError) as info:
        publish(storage, _body(code), "192.0.2.1", at, PublishConfig(), code_key=KEY)
    return info.value.code


def test_a_revoked_code_refuses_uploads_with_its_own_reason(storage: Storage) -> None:
    code = issue_code(storage, NOW, key=KEY).code
    revoked = revoke_code(storage, code, NOW + 10, key=KEY)
    assert (revoked.state, revoked.at, revoked.refuses_uploads) == ("revoked", NOW + 10, True)
    assert _refusal(storage, code) == "verification_code_revoked"
    assert storage.count_keys() == 0 and storage.get_code(KEY.hash(code)).used_at is None
    again = revoke_code(storage, code, NOW + 20, key=KEY)
    assert (again.state, again.at) == ("already_revoked", NOW + 10)
    # other codes are untouched
    other = issue_code(storage, NOW, key=KEY, kind=SHORT).code
    assert publish(storage, _body(other), "192.0.2.1", NOW + 60, PublishConfig(), code_key=KEY).inserted == 1


def test_a_used_expired_or_unknown_code_is_said_so(storage: Storage) -> None:
    used = issue_code(storage, NOW, key=KEY).code
    publish(storage, _body(used), "192.0.2.1", NOW + 5, PublishConfig(), code_key=KEY)
    said = revoke_code(storage, used, NOW + 10, key=KEY)
    assert (said.state, said.at, said.refuses_uploads) == ("used", NOW + 5, False)
    assert "1 key(s) and 0 check-in report(s) not yet published withheld" in said.sentence()  # test_revoke_used_code.py
    short = issue_code(storage, NOW, key=KEY, kind=SHORT).code  # 15 minutes
    expired = revoke_code(storage, short, NOW + 3600, key=KEY)
    assert (expired.state, expired.at) == ("expired", NOW + 900)
    assert _refusal(storage, short, NOW + 3600) == "verification_code_expired"
    with pytest.raises(InputError, match="no such code in this database"):
        revoke_code(storage, "1234567812345678", NOW, key=KEY)
    with pytest.raises(InputError, match="digits only"):
        revoke_code(storage, "12x34", NOW, key=KEY)
    with pytest.raises(InputError, match="11 or 16 digits, this one 4"):
        revoke_code(storage, "12-34", NOW, key=KEY)


def test_revoke_code_command(tmp_path: Path) -> None:
    keys, db = tmp_path / "keys", tmp_path / "s.db"
    keygen(keys)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["server", *args], obj={"clock": VirtualClock(NOW)})

    base = ["--server-db", str(db), "--signing-key-dir", str(keys)]
    code = json.loads(run("issue-code", *base, "--create-db", "--json").stdout)["code"]
    result = run("revoke-code", *base, "--code", code)
    assert result.exit_code == 0
    assert result.stdout.strip() == (
        "code revoked at 2025-11-20T12:00:00+00:00: an upload with it is refused (verification_code_revoked)"
    )
    result = run("revoke-code", *base, "--code", code, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["state"] == "already_revoked"
    typo = run("revoke-code", *base, "--code", "1" * 16)
    assert typo.exit_code == 2 and typo.output.startswith("Error: no such code in this database")
    missing = run("revoke-code", "--server-db", str(tmp_path / "typo.db"), "--signing-key-dir", str(keys), "--code", code)
    assert missing.exit_code == 2 and "(check --server-db)" in missing.output and not (tmp_path / "typo.db").exists()
    storage = open_storage(db)
    try:
        used = issue_code(storage, NOW, key=CodeKey.load(keys)).code
        publish(storage, _body(used), "192.0.2.1", NOW, PublishConfig(), code_key=CodeKey.load(keys))
    finally:
        storage.close()
    result = run("revoke-code", *base, "--code", used)  # its key not exported yet: withheld (test_revoke_used_code.py)
    assert result.exit_code == 0 and result.output.startswith("code already used at 2025-11-20T12:00:00+00:00, now revoked")


def test_a_device_uploading_with_a_revoked_code_is_told_to_ask_for_a_new_one(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "s.db")
    try:
        app = create_app(storage, code_key=KEY, signer=keygen(tmp_path / "keys"), clock=VirtualClock(NOW))
        client = KeyServerClient("http://keys.test", http=TestClient(app, base_url="http://keys.test"))
        code = issue_code(storage, NOW, key=KEY).code
        revoke_code(storage, code, NOW, key=KEY)
        keys = empty_keys(1)
        keys["key"], keys["rolling_start"], keys["rolling_period"] = [b"\x02" * 16], rolling_start(NOW) - 144, 144
        with pytest.raises(UploadRefusedError) as info:
            client.publish(keys, code)
        assert str(info.value) == "upload refused: the health authority withdrew this verification code: ask them for a new one"
        assert info.value.exit_code == 2
    finally:
        storage.close()


#: The zero of a few scripts' decimal digits: ASCII, Arabic-Indic, Devanagari, full-width (a CJK input method).
ZEROS = ["0", "\u0660", "\u0966", "\uff10"]
#: What people put between groups: a space, a no-break space, a hyphen, an en dash, nothing.
SEPARATORS = [" ", "\u00a0", "-", "\u2013", ""]


@given(st.integers(0, 10**10 - 1), st.lists(st.sampled_from(ZEROS), min_size=11, max_size=11), st.sampled_from(SEPARATORS))
def test_revoke_code_reads_a_typed_code_as_upload_does(number: int, zeros: list[str], separator: str) -> None:
    """upload and venue warn took digits of any script and any dash (39692f1), revoke-code ASCII digits
    only: a code staff could upload with was 'digits only' to the command that withdraws it."""
    from stdnum import damm

    code = f"{number:010d}" + damm.calc_check_digit(f"{number:010d}")
    typed = separator.join("".join(chr(ord(z) + int(d)) for z, d in zip(zeros[i:], part))
                           for i, part in ((0, code[:3]), (3, code[3:7]), (7, code[7:])))
    assert check_code(typed) == normal_code(typed) == code and code_mistake(normal_code(typed)) is None


def test_revoke_code_command_takes_the_code_in_another_script(tmp_path: Path) -> None:
    keys, db = tmp_path / "keys", tmp_path / "s.db"
    keygen(keys)
    storage = open_storage(db)
    try:
        code = issue_code(storage, NOW, key=CodeKey.load(keys), kind=SHORT).code
    finally:
        storage.close()
    arabic = grouped(code).translate({ord(str(d)): chr(0x0660 + d) for d in range(10)}).replace(" ", "\u2013")
    result = CliRunner().invoke(
        cli, ["server", "revoke-code", "--server-db", str(db), "--signing-key-dir", str(keys), "--code", arabic],
        obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 0 and result.output.startswith("code revoked at"), result.output  # was 'digits only', exit 2
