"""The one export directory a key server's database publishes from, kept on record in its meta.

An export records its files' keys as published, whatever directory it wrote them into; only one
directory is served (``server run``'s) or synced to the static host.  An export by hand into another
one (user29: ``server export --export-dir B`` beside ``server run --export-dir A``) recorded an F0's keys
as published, A's ``index.txt`` never listed the files in B, and no node ever got those keys.  So the
first exporter records its directory, and an export into another one is refused until the operator
says the exports moved (``moved``).  ``export_batches`` asks here before it writes anything (every export:
the commands', the schedule's, a program's); the commands ask first too, before they make a directory or serve.
"""

from __future__ import annotations

from pathlib import Path

from bluezone.errors import InputError
from bluezone.printable import printable_line
from bluezone.server.storage import Storage

#: The flag that moves the record (``server export`` and ``server run``).
MOVED_FLAG = "--export-dir-moved"


def claim_export_dir(storage: Storage, out: Path, moved: bool = False) -> None:
    """Record ``out`` as the export directory if none is on record (``moved``: in place of the one that
    is), or refuse it (InputError) if another is: files written there would be recorded as published and
    never served."""
    here = str(out.resolve())
    recorded = storage.record_export_dir(here, replace=moved)
    if recorded != here:
        raise InputError(printable_line(
            f"--export-dir {here} is not this server's export directory {recorded}: files exported into another"
            " one are recorded as published but never listed in the index.txt nodes read; give --export-dir"
            f" {recorded}, or, to move the exports there on purpose, move the files of {recorded} into {here}"
            f" and add {MOVED_FLAG} (once)"
        ))

