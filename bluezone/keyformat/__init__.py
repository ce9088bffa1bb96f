"""GAEN diagnosis-key formats, neutral ground between the node and the key server.

``keys`` is the in-memory array (``KEY_DTYPE``), ``keyfile`` the publish-API JSON and the
reader of any key file, ``export`` the signed ``export.bin``/``export.sig``/zip.  Nothing
here does I/O beyond reading and writing the files it is given.
"""

from bluezone.keyformat.export import (
    ExportFile,
    SignatureInfo,
    apply_revisions,
    build_export_bin,
    load_export,
    load_public_key,
    open_signed_export,
    public_key_base64,
    read_export_bin,
    read_export_zip,
    sign_export,
    signed_export_zip,
    verify_export_sig,
    write_export_zip,
)
from bluezone.keyformat.keyfile import (
    dump_keys_json,
    load_keys,
    parse_keys,
    parse_keys_json,
    publish_body,
    write_keys_json,
)
from bluezone.keyformat.keys import KEY_DTYPE, NO_DAYS_SINCE_ONSET, empty_keys, keys_from_daily

__all__ = [
    "KEY_DTYPE",
    "NO_DAYS_SINCE_ONSET",
    "ExportFile",
    "SignatureInfo",
    "apply_revisions",
    "build_export_bin",
    "dump_keys_json",
    "empty_keys",
    "keys_from_daily",
    "load_export",
    "load_keys",
    "load_public_key",
    "open_signed_export",
    "parse_keys",
    "parse_keys_json",
    "public_key_base64",
    "publish_body",
    "read_export_bin",
    "read_export_zip",
    "sign_export",
    "signed_export_zip",
    "verify_export_sig",
    "write_export_zip",
    "write_keys_json",
]
