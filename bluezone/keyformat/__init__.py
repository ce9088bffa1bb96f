"""GAEN diagnosis-key formats, neutral ground between the node and the key server.

``keys`` is the in-memory array (``KEY_DTYPE``), ``keyfile`` the publish-API JSON and the
reader of any key file, ``export`` the signed ``export.bin``/``export.sig``/zip.  Nothing
here does I/O beyond reading and writing the files it is given.
"""

from bluezone.lazyexports import lazy_exports as _lazy_exports

#: Loaded on first use: ``KEY_DTYPE`` alone (the matcher's) needs neither protobuf nor the export
#: reader, and ``bluezone check`` imports those (~0.03 s) while its store is read in a thread.
_EXPORTS = {
    "ExportFile": "export",
    "SignatureInfo": "export",
    "apply_revisions": "export",
    "build_export_bin": "export",
    "load_export": "export",
    "load_public_key": "export",
    "open_signed_export": "export",
    "public_key_base64": "export",
    "read_export_bin": "export",
    "read_export_zip": "export",
    "sign_export": "export",
    "signed_export_zip": "export",
    "verify_export_sig": "export",
    "write_export_zip": "export",
    "dump_keys_json": "keyfile",
    "load_keys": "keyfile",
    "parse_keys": "keyfile",
    "parse_keys_json": "keyfile",
    "publish_body": "keyfile",
    "write_keys_json": "keyfile",
    "KEY_DTYPE": "keys",
    "NO_DAYS_SINCE_ONSET": "keys",
    "empty_keys": "keys",
    "keys_from_daily": "keys",
}

__all__ = sorted(_EXPORTS, key=lambda name: (not name.isupper(), not name[0].isupper(), name))

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
