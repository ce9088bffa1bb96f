"""attack20 (PostgreSQL): a revocation of an earlier revising code while an export takes the key's standing revision
out of revision_queue.  Recursive, then likely (code A, never in a file: the confirmation replaced it in the queue),
then confirmed (code B); an export takes the confirmed revision; meanwhile ``revoke-code A`` undoes the likely one and
puts the key to stand as the confirmed, queued again because it read it not yet carried (the export had not
committed).  The queue then held a revision a file carried, ``_take_out``'s ``carried = 0`` count never matched
again, and every later export failed "nothing recorded": no key and no revision published any more."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_helpers import KEY, NOW, revoked_during

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.keyformat.export import open_signed_export
from bluezone.server.codes import issue_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, PublishResult, publish
from bluezone.server.signing import Signer, keygen
from bluezone.server.storage import CONFIRMED, Storage, open_storage

KEYS = [bytes([0x41 + i]) * 16 for i in range(2)]
FIRST = rolling_start(NOW) - ROLLING_PERIOD


def _upload(storage: Storage, test_type: str, token: str | None = None, at: float = NOW + 5) -> tuple[str, PublishResult]:
    """KEYS (the older one's day: a recursive code's exposure date) under a new code of ``test_type``."""
    exposed = dt.datetime.fromtimestamp((FIRST - ROLLING_PERIOD) * 600, dt.UTC).date()
    code = issue_code(storage, NOW, key=KEY, test_type=test_type,
                      **({"exposure_date": exposed} if test_type == "recursive" else {})).code
    entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": FIRST - i * ROLLING_PERIOD}
               for i, k in enumerate(KEYS)]
    body = json.dumps({"temporaryExposureKeys": entries, "verificationPayload": code,
                       **({"revisionToken": token} if token else {})}).encode()
    return code, publish(storage, body, "192.0.2.1", at, PublishConfig(), code_key=KEY)


def _export(storage: Storage, signer: Signer, out: Path, at: float) -> dict[bytes, int]:
    """An export at ``at``: the revisions of KEYS its files carry (key -> new report type)."""
    revised = {}
    for batch in export_batches(storage, signer, out, at, ExportConfig()):
        export, _ = open_signed_export((out / batch.name).read_bytes(), signer.public_key)
        revised |= {bytes(k["key"]): int(k["report_type"]) for k in export.revised_keys if bytes(k["key"]) in KEYS}
    return revised


def test_revoking_the_likely_code_while_an_export_takes_the_confirmation_leaves_exports_working(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, exporter, revoker = (open_storage(postgres_dsn) for _ in range(3))
    signer = keygen(tmp_path / "keys")
    out = tmp_path / "exports"
    try:
        _, first = _upload(storage, "recursive")
        _export(storage, signer, out, NOW + 20)  # the keys' first file
        likely, second = _upload(storage, "likely", first.revision_token, at=NOW + 30)
        _upload(storage, "confirmed", second.revision_token, at=NOW + 40)  # replaces the likely one in the queue

        held, go = threading.Event(), threading.Event()
        dequeue = exporter._dequeue

        def holding(cur: Any, queue: str, ids: np.ndarray, column: str = "key_id") -> int:
            taken = dequeue(cur, queue, ids, column)
            if queue == "revision_queue" and not held.is_set():
                held.set()  # the confirmed revisions taken out and marked carried, not committed
                assert go.wait(30)
            return taken

        monkeypatch.setattr(exporter, "_dequeue", holding)
        said = revoked_during(postgres_dsn, revoker, likely, NOW + 51, held, go,
                              export=lambda: _export(exporter, signer, out, NOW + 50))
        assert said["export"] == {k: CONFIRMED for k in KEYS}
        monkeypatch.undo()
        assert _export(exporter, signer, out, NOW + 60) == {}  # was: ServerStorageError, at every export after
        assert not exporter.pending_revisions(0)[0].size
    finally:
        for s in (storage, exporter, revoker):
            s.close()
