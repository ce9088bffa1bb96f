"""attack21: ``server revoke-code`` of a confirming code while an export records the likely revision it read
before the confirmation replaced it in the queue (PostgreSQL, two connections).  The export holds the likely
revision's row (marked carried) and then locks the queue's rows (``_replaced``); the revocation deleted the
confirmed revision and its queue row, then locked the key's other revisions: each waited for the other, and
PostgreSQL aborted one (DeadlockDetected out of revoke_code, a traceback at the command line; attack21's race
harness: 5 of 8 runs on srv21's branch, whose faster exports overlap revocations more)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from server_helpers import KEY, NOW, revoked_during

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import ServerStorageError
from bluezone.server.codes import issue_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.storage import LIKELY, Storage, open_storage

#: one F1's two keys, of yesterday and the day before
ENTRIES = [{"key": base64.b64encode(bytes([0x41 + i]) * 16).decode(),
            "rollingStartNumber": rolling_start(NOW) - (i + 1) * ROLLING_PERIOD} for i in range(2)]


def _body(code: str, token: str | None) -> bytes:
    return json.dumps({"temporaryExposureKeys": ENTRIES, "verificationPayload": code,
                       **({"revisionToken": token} if token else {})}).encode()


def _upload(storage: Storage, test_type: str, token: str | None = None, at: float = NOW + 5) -> Any:
    """The F1's keys uploaded under a new code of ``test_type`` (with ``token``: revising them)."""
    extra = {"exposure_date": dt.datetime.fromtimestamp(NOW - 3 * 86_400, dt.UTC).date()} if test_type == "recursive" else {}
    code = issue_code(storage, NOW, key=KEY, test_type=test_type, **extra).code
    return code, publish(storage, _body(code, token), "192.0.2.1", at, PublishConfig(), code_key=KEY)


def test_a_revocation_beside_an_export_recording_a_replaced_revision_is_no_deadlock(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    revoker, exporter = open_storage(postgres_dsn), open_storage(postgres_dsn)
    try:
        signer, out = keygen(tmp_path / "keys"), tmp_path / "out"
        _, first = _upload(revoker, "recursive")
        export_batches(revoker, signer, out, NOW + 6, ExportConfig())
        _, likely = _upload(revoker, "likely", first.revision_token, at=NOW + 10)
        confirming = issue_code(revoker, NOW, key=KEY, test_type="confirmed").code
        read = exporter.pending_revisions

        def read_then_confirmed(*args: Any, **kwargs: Any) -> Any:
            """The likely revision read; the confirmation replaces it in the queue before the export records."""
            pending = read(*args, **kwargs)
            publish(revoker, _body(confirming, likely.revision_token), "192.0.2.1", NOW + 20, PublishConfig(), code_key=KEY)
            return pending

        held, go = threading.Event(), threading.Event()
        replaced = exporter._replaced

        def holding(cur: Any, revision_ids: Any) -> int:
            """Held once the likely revision is marked carried (its row locked), before the queue is locked."""
            held.set()
            assert go.wait(30)
            return replaced(cur, revision_ids)

        monkeypatch.setattr(exporter, "pending_revisions", read_then_confirmed)
        monkeypatch.setattr(exporter, "_replaced", holding)

        def export() -> object:
            try:
                return export_batches(exporter, signer, out, NOW + 30, ExportConfig())
            except ServerStorageError as exc:  # (nothing recorded: the next export writes it; no harm)
                return exc

        said = revoked_during(postgres_dsn, revoker, confirming, NOW + 25, held, go, export=export)
        assert "export" in said and "revoked" in said, said
        assert said["revoked"].withheld.revisions == 2
        standing = revoker.pending_revisions(0)[0]
        assert len(standing) == 0 or set(standing["report_type"].tolist()) == {LIKELY}
    finally:
        exporter.close()
        revoker.close()
