"""An F1's keys uploaded and revised under codes of each type, and exported (test_second_revision and the tests
of what revisions leave in the export queue share them)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

from server_helpers import KEY, NOW, uploaded

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.keyformat.export import open_signed_export
from bluezone.server.codes import issue_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, PublishResult, publish
from bluezone.server.signing import Signer
from bluezone.server.storage import Storage

DAY = rolling_start(NOW) - ROLLING_PERIOD
KEYS = [b"\x31" * 16, b"\x32" * 16]
EXPOSED = dt.datetime.fromtimestamp((DAY - ROLLING_PERIOD) * 600, dt.UTC).date()  # the older key's day


def revision_body(code: str, token: str | None, keys: list[bytes] = KEYS) -> bytes:
    entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": DAY - i * ROLLING_PERIOD} for i, k in enumerate(keys)]
    return json.dumps({"temporaryExposureKeys": entries, "verificationPayload": code,
                       **({"revisionToken": token} if token else {})}).encode()


def upload_keys(storage: Storage, test_type: str, token: str | None = None, at: float = NOW + 5) -> tuple[str, PublishResult]:
    """KEYS uploaded under a new code of ``test_type`` (with ``token``: revising them): the code and the answer."""
    extra = {"exposure_date": EXPOSED} if test_type == "recursive" else {}
    code = issue_code(storage, NOW, key=KEY, test_type=test_type, **extra).code
    return code, publish(storage, revision_body(code, token), "192.0.2.1", at, PublishConfig(), code_key=KEY)


def export_kinds(
    storage: Storage, signer: Signer, out: Path, at: float, only: list[bytes] | None = KEYS
) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """An export at ``at``: its files' real keys (``only`` those) -> report type, and real revisions -> their new type."""
    keys: dict[bytes, int] = {}
    revised: dict[bytes, int] = {}
    for batch in export_batches(storage, signer, out, at, ExportConfig()):
        export, _ = open_signed_export((out / batch.name).read_bytes(), signer.public_key)
        for found, into in ((export.keys, keys), (export.revised_keys, revised)):
            real = uploaded(found, storage) if len(found) else found
            for k in real:
                if only is not None and bytes(k["key"]) not in only:
                    continue
                assert bytes(k["key"]) not in into  # each key once a file
                into[bytes(k["key"])] = int(k["report_type"])
    return keys, revised
