"""The node's side of a key server: upload own keys, download and verify batches, check them.

``keyserver`` is the HTTP client, ``pinning`` the server key a node trusts, ``state`` what the
node remembers about servers (in its own sighting store), ``uploading`` and ``check`` the two
commands as calls.  Nothing here imports ``bluezone.server``: a node needs no server code.
"""

from bluezone.lazyexports import lazy_exports as _lazy_exports

#: Loaded on first use: ``bluezone check --keys`` reads ``client.exposures`` (meetings across UTC
#: midnight) and must not import the HTTP client, asyncio and the upload code with it.
_EXPORTS = {
    "ServerCheckResult": "check",
    "check_server": "check",
    "check_with_server": "check",
    "resolve_pin": "check",
    "KeyServerClient": "keyserver",
    "PublishReceipt": "keyserver",
    "PinnedKey": "pinning",
    "read_server_key": "pinning",
    "ServerState": "state",
    "UploadPlan": "uploading",
    "UploadResult": "uploading",
    "dry_run_request": "uploading",
    "keys_to_upload": "uploading",
    "plan_upload": "uploading",
    "today_key_in_use": "uploading",
    "upload": "uploading",
    "upload_own_keys": "uploading",
    "publish_body": "keyserver",  # bluezone.keyformat's wire format, here for a client's convenience
}

__all__ = sorted(_EXPORTS, key=lambda name: (not name[0].isupper(), name))

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
