"""The node's side of a key server: upload own keys, download and verify batches, check them.

``keyserver`` is the HTTP client, ``pinning`` the server key a node trusts, ``state`` what the
node remembers about servers (in its own sighting store), ``uploading`` and ``check`` the two
commands as calls.  Nothing here imports ``bluezone.server``: a node needs no server code.
"""

from bluezone.client.check import ServerCheckResult, check_server, check_with_server, resolve_pin
from bluezone.client.keyserver import KeyServerClient, PublishReceipt
from bluezone.client.pinning import PinnedKey, read_server_key
from bluezone.client.state import ServerState
from bluezone.client.uploading import (
    UploadPlan,
    UploadResult,
    dry_run_request,
    keys_to_upload,
    plan_upload,
    today_key_in_use,
    upload,
    upload_own_keys,
)
from bluezone.keyformat.keyfile import publish_body  # the wire format; here for a client's convenience

__all__ = [
    "KeyServerClient",
    "PinnedKey",
    "PublishReceipt",
    "ServerCheckResult",
    "ServerState",
    "UploadPlan",
    "UploadResult",
    "check_server",
    "check_with_server",
    "dry_run_request",
    "keys_to_upload",
    "plan_upload",
    "publish_body",
    "read_server_key",
    "resolve_pin",
    "today_key_in_use",
    "upload",
    "upload_own_keys",
]
