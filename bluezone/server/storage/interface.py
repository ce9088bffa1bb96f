"""``Storage``: everything the key server asks of its database, one part per job, each in its module."""

from __future__ import annotations

from bluezone.server.storage.checkins import CheckInReports
from bluezone.server.storage.codes import VerificationCodes
from bluezone.server.storage.retention import Retention
from bluezone.server.storage.revocation import Revocations
from bluezone.server.storage.schema import Schema
from bluezone.server.storage.scratch import BenchmarkScratch
from bluezone.server.storage.uploads import Uploads


class Storage(Uploads, CheckInReports, VerificationCodes, Revocations, Retention, BenchmarkScratch, Schema):
    """What the server needs from a database; see SQLiteStorage and PostgresStorage."""
