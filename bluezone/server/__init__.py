"""The key server: verification codes, key publishing, signed GAEN export batches.

The node's side (upload, download, verify, check) is ``bluezone.client``.  Names are loaded on
first use, so ``import bluezone.server.storage`` does not pull in FastAPI and uvicorn.  (The
functions named like their modules stay there: ``bluezone.server.serve.serve``,
``bluezone.server.publish.publish``.)
"""

from __future__ import annotations

from bluezone.lazyexports import lazy_exports as _lazy_exports

_EXPORTS = {
    "create_app": "app",
    "ServeSettings": "serve",
    "Storage": "storage",
    "SQLiteStorage": "storage",
    "PostgresStorage": "storage",
    "open_storage": "storage",
    "CodeKey": "codes",
    "IssuedCode": "codes",
    "issue_code": "codes",
    "Revocation": "codes",
    "revoke_code": "codes",
    "ExportConfig": "exports",
    "export_batches": "exports",
    "PublishConfig": "publish",
    "PublishResult": "publish",
    "Signer": "signing",
    "keygen": "signing",
    "load_signer": "signing",
}

__all__ = sorted(_EXPORTS, key=lambda name: (not name[0].isupper(), name))

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
