"""attack19: on PostgreSQL an export takes its keys out of the queues on a connection of its own while it
writes the files (uncommitted: their rows locked), and asked the storage for the day's padding secret only
then, once a file needed fakes.  An upload revising one of those keys meanwhile (the scheduled exporter and
the publish endpoint share one storage in `server run`) held the storage's lock while it waited for the
rows, and the export waited for that lock: both for ever, and every later request with them."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from pathlib import Path

from server_helpers import KEY, NOW

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.server.codes import issue_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.storage import open_storage

DAY = rolling_start(NOW) - ROLLING_PERIOD
KEYS = [b"\x41" * 16, b"\x42" * 16]


def _upload(storage, test_type: str, token: str | None, at: float):
    extra = {"exposure_date": dt.datetime.fromtimestamp((DAY - ROLLING_PERIOD) * 600, dt.UTC).date()} if test_type == "recursive" else {}
    code = issue_code(storage, NOW, key=KEY, test_type=test_type, **extra).code
    entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": DAY - i * ROLLING_PERIOD} for i, k in enumerate(KEYS)]
    body = json.dumps({"temporaryExposureKeys": entries, "verificationPayload": code, **({"revisionToken": token} if token else {})})
    return publish(storage, body.encode(), "192.0.2.1", at, PublishConfig(), code_key=KEY)


def test_an_upload_revising_keys_an_export_is_writing_does_not_hang_it(postgres_dsn: str, tmp_path: Path) -> None:
    storage = open_storage(postgres_dsn)
    signer = keygen(tmp_path / "k")
    first = _upload(storage, "recursive", None, NOW + 5)
    answers: list[object] = []
    asked = storage.padding_secret

    def revising_meanwhile(day: int, new_secret: bytes | None = None) -> bytes | None:
        # the moment the export wrote its first file: its keys are out of the queues, uncommitted
        uploader = threading.Thread(target=lambda: answers.append(_upload(storage, "likely", first.revision_token, NOW + 20)))
        uploader.start()
        time.sleep(1.0)  # the upload now waits for the rows the export holds
        return asked(day, new_secret)

    storage.padding_secret = revising_meanwhile  # type: ignore[method-assign]
    files: list[object] = []
    exporter = threading.Thread(target=lambda: files.extend(export_batches(storage, signer, tmp_path / "out", NOW + 10, ExportConfig())))
    exporter.start()
    exporter.join(30)
    hung = exporter.is_alive()
    if hung:  # end it: the export's connection and the upload's, so that the threads and the test can finish
        import psycopg

        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        exporter.join(30)
    time.sleep(0.5)
    assert not hung, "the export and the upload waited for each other"
    assert files and len(answers) == 1 and answers[0].revised == 2
    storage.close()
