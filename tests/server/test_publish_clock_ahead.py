"""The mirror of an upload across UTC midnight (tests/server/test_venue_publish.py): a device whose
clock is a few seconds ahead of the server's uploads just after its midnight, before the server's.
Its today's key (with --include-today) and a check-in of its today (always sent; a visit is split at
UTC midnight) are then 'in the future' by the server's clock, and the whole upload was refused.
Up to ten minutes ahead is now taken; further is still refused."""

from __future__ import annotations

import json

import pytest
from server_helpers import KEY, TODAY, checkin_entry

from bluezone.client.uploading import keys_to_upload
from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD
from bluezone.crypto.keys import DailyKey
from bluezone.errors import PublishError
from bluezone.keyformat.keyfile import publish_body
from bluezone.server.codes import issue_code
from bluezone.server.publish import PublishConfig, publish

MIDNIGHT = (TODAY + 1) * DAY_SECONDS
DAILY = [DailyKey(bytes([d + 1]) * 16, (TODAY + 1 - d) * ROLLING_PERIOD) for d in range(16, -1, -1)]


def test_an_upload_from_a_clock_a_little_ahead_is_taken(storage) -> None:
    keys = keys_to_upload(DAILY, MIDNIGHT + 5, include_today=True)  # the device: 00:00:05
    assert keys["rolling_start"][-1] == (TODAY + 1) * ROLLING_PERIOD
    code = issue_code(storage, MIDNIGHT - 3600, key=KEY).code
    doc = publish_body(keys, code, checkins=[checkin_entry(TODAY), checkin_entry(TODAY + 1, (TODAY + 1) * ROLLING_PERIOD)])
    result = publish(storage, json.dumps(doc).encode(), "c", MIDNIGHT - 5, PublishConfig(), code_key=KEY)  # 23:59:55
    assert result.inserted == len(keys) and result.checkins == 2


@pytest.mark.parametrize("what", ["key", "checkin"])
def test_further_ahead_is_still_the_future(storage, what: str) -> None:
    keys = keys_to_upload(DAILY, MIDNIGHT + 5, include_today=True)
    checkins = [checkin_entry(TODAY)]
    if what == "checkin":
        keys, checkins = keys[:-1], [checkin_entry(TODAY + 1, (TODAY + 1) * ROLLING_PERIOD)]
    code = issue_code(storage, MIDNIGHT - 3 * 3600, key=KEY).code
    doc = publish_body(keys, code, checkins=checkins)
    with pytest.raises(PublishError, match="in the future"):  # the server at 23:40: twenty minutes behind
        publish(storage, json.dumps(doc).encode(), "c", MIDNIGHT - 1200, PublishConfig(), code_key=KEY)
