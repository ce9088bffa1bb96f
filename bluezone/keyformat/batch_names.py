"""The names bluezone's exporter gives its files, which a node reads too (one definition for both sides).

A node tells from the names alone that a roll-up holds nothing new for it
(``bluezone.client.keyserver.covered_rollups``), so what ``bluezone.server.exports`` writes and what
the client parses must not drift apart.
"""

from __future__ import annotations

import re

#: One export's files: ``<stamp>-<day start>-<tag>-NNNN.zip`` (keys of one UTC day) and
#: ``<stamp>-venues-<tag>-NNNN.zip`` (check-ins); ``kind`` is the day start or "venues".
EXPORT_FILE = re.compile(r"^(?P<stamp>[0-9]+)-(?P<kind>[0-9]+|venues)-[0-9a-f]+-[0-9]+\.zip$")
#: An export day's roll-ups: ``<export day start>-<day start>-day<n>x<tag>-NNNN.zip`` and
#: ``<export day start>-venues-day<n>x<tag>-NNNN.zip``, where n is how many files of that export day (of
#: that day's keys; of check-ins) they replace, and ``tag`` tells one roll-up's files from another's.
#: (Check-in roll-ups written before named the day of their check-ins, ``...-day<n>x<day start>x<tag>-...``:
#: ``start``.)
ROLLUP_FILE = re.compile(
    r"^(?P<day>[0-9]+)-(?P<kind>[0-9]+|venues)-day(?P<replaces>[0-9]+)x(?:(?P<start>[0-9]+)x)?(?P<tag>[0-9a-f]+)-[0-9]+\.zip$"
)
