"""GAEN key export files: ``export.bin``, ``export.sig`` and the signed ``.zip`` holding both.

The format is Google/Apple's "Exposure Key Export File Format": ``export.bin`` is the
16-byte header ``EK Export v1`` (space padded) followed by a ``TemporaryExposureKeyExport``
protocol buffer; ``export.sig`` is a ``TEKSignatureList`` whose signature is ECDSA P-256
over the SHA-256 of the whole ``export.bin``.  Encoding and decoding go through the
``protobuf`` package and the checked-in ``gaen_export_pb2`` (``scripts/regen_proto.sh``),
except the keys themselves, written by ``tekencode`` and read by ``tekwire`` column-wise (the
same bytes, without a Python object per key); signatures through ``cryptography``.  Every defect in a file raises ``KeyFileError``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from google.protobuf.message import DecodeError

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.errors import ExportSignatureError, KeyFileError
from bluezone.keyformat.exportstream import PIECE, KeySink, header_problem, stream_export_bin
from bluezone.keyformat.tekencode import KEYS_FIELD, REVISED_KEYS_FIELD, encode_keys
from bluezone.keyformat.tekwire import columns_from_messages, decode_keys, keys_from_columns, raw_export_class
from bluezone.keyformat.keys import KEY_DTYPE, MAX_KEY_FILE_BYTES, empty_keys

if TYPE_CHECKING:
    # imported where a key is read, signs or verifies: a check of an unsigned file does none, and
    # with the compiled helper it needs nothing else of cryptography (~8 ms of its start-up)
    from cryptography.hazmat.primitives.asymmetric import ec

    # imported where a message is made or parsed whole (~12 ms: its descriptors built): a check streams
    # its file's keys without it, and parses the signature infos once its workers derive (exportstream)
    import bluezone.keyformat.gaen_export_pb2 as pb

#: The 16-byte header every ``export.bin`` starts with.
EXPORT_HEADER = b"EK Export v1    "
#: ASN.1 OID of ECDSA with SHA-256, the only algorithm GAEN uses.
ECDSA_P256_SHA256 = "1.2.840.10045.4.3.2"
EXPORT_BIN = "export.bin"
EXPORT_SIG = "export.sig"
#: Largest ``export.sig`` read: a TEKSignatureList is ~100 bytes per signature (a zip of a few KB
#: could otherwise inflate one to MAX_KEY_FILE_BYTES, read whole before the keys).
MAX_SIG_FILE_BYTES = 64 << 10
#: Largest ``export.bin`` parsed whole by protobuf, for what the streamed reader leaves to it (a form
#: no key server writes); it holds such a file several times over (a 250 MB one peaked at 1 GB).
MAX_WHOLE_PARSE_BYTES = 32 << 20
#: A fixed timestamp for zip members, so the same batch always gives the same bytes.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class SignatureInfo:
    """Which key signed a batch: what clients pin (with the public key itself)."""

    key_id: str
    key_version: str
    algorithm: str = ECDSA_P256_SHA256

    def to_pb(self) -> pb.SignatureInfo:
        import bluezone.keyformat.gaen_export_pb2 as pb  # (~12 ms: see the imports above)

        return pb.SignatureInfo(
            verification_key_id=self.key_id,
            verification_key_version=self.key_version,
            signature_algorithm=self.algorithm,
        )

    @classmethod
    def from_pb(cls, info: pb.SignatureInfo) -> SignatureInfo:
        return cls(info.verification_key_id, info.verification_key_version, info.signature_algorithm)


@dataclass(frozen=True)
class ExportFile:
    """A parsed ``export.bin``: its header fields and keys (``KEY_DTYPE``)."""

    start_timestamp: int
    end_timestamp: int
    region: str
    batch_num: int
    batch_size: int
    signature_infos: tuple[SignatureInfo, ...]
    keys: np.ndarray
    revised_keys: np.ndarray = field(default_factory=empty_keys)

    def current_keys(self) -> np.ndarray:
        """``keys`` with this file's revisions applied (see ``apply_revisions``)."""
        return apply_revisions(self.keys, self.revised_keys)


def apply_revisions(keys: np.ndarray, revised: np.ndarray) -> np.ndarray:
    """``keys`` as they stand after ``revised``: a key listed in both takes its revised report
    type, onset and risk (a "likely" report confirmed, or revoked by a negative test; a key revised
    twice takes the later one); a revised key first published in an earlier file is appended, so
    its revocation is still known.

    Vectorised (a day may hold millions of keys): keys are matched to revisions by their first
    eight bytes with a sorted search, and the few that share them compared whole."""
    if not len(revised):
        return keys
    out, revised = np.ascontiguousarray(keys, KEY_DTYPE).copy(), np.ascontiguousarray(revised, KEY_DTYPE)
    by_prefix = np.argsort(key_prefixes(revised), kind="stable")
    prefixes = key_prefixes(revised)[by_prefix]
    near = np.searchsorted(prefixes, key_prefixes(out))
    maybe = np.flatnonzero(prefixes[np.minimum(near, len(prefixes) - 1)] == key_prefixes(out))
    # whole keys: revised ones sorted stably, so the last of equal ones is each key's latest revision
    order = np.argsort(revised["key"], kind="stable")
    ordered = revised["key"][order]
    last = np.searchsorted(ordered, out["key"][maybe], "right") - 1
    same = (last >= 0) & (ordered[np.maximum(last, 0)] == out["key"][maybe])
    rows, latest = maybe[same], order[last[same]]
    for name in ("report_type", "days_since_onset", "transmission_risk"):
        out[name][rows] = revised[name][latest]
    unknown = ~np.isin(revised["key"], revised["key"][latest])
    return np.concatenate([out, revised[unknown]]) if unknown.any() else out


def key_prefixes(keys: np.ndarray) -> np.ndarray:
    """The first eight bytes of each (contiguous) row's ``key`` as uint64, read in place."""
    offset = KEY_DTYPE.fields["key"][1]  # type: ignore[index]  # a structured dtype has fields
    return np.ndarray(len(keys), "<u8", keys, offset, (keys.strides[0],))


# --- export.bin -------------------------------------------------------------------------------


def read_export_bin(data: bytes) -> ExportFile:
    """Parse an ``export.bin`` (header + TemporaryExposureKeyExport)."""
    return _read_export(lambda: nullcontext(io.BytesIO(data)), len(data))


def _read_export(
    open_bin: Callable[[], AbstractContextManager[BinaryIO]],
    size: int,
    check: Callable[[bytes], object] | None = None,
    sink: KeySink | None = None,
) -> ExportFile:
    """The ``export.bin`` of ``size`` bytes that ``open_bin`` opens, streamed in bounded memory
    (``exportstream``), or whole through protobuf where that reader leaves it.  ``check`` is
    given its SHA-256 before any defect in its content is raised: a bad signature is said first.
    With ``sink`` the keys go to it as they are read (``keys`` stays empty); the file is good only
    if this returns."""
    if size > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"export.bin too large ({size} bytes, limit {MAX_KEY_FILE_BYTES})")
    with open_bin() as stream:
        streamed = stream_export_bin(stream, size, sink, stop_at_problem=check is not None)
    if streamed is not None and streamed.cut_short:
        # a key broke a rule, so the rest was only hashed: a forged file is said at once; a signed
        # one is read again in full, to say what an unsigned read says, and must not have changed
        assert check is not None
        check(streamed.digest)
        check = functools.partial(_unchanged, streamed.digest)
        with open_bin() as stream:
            streamed = stream_export_bin(stream, size, None if sink is None else _DROPPED)  # said, not kept
    if streamed is None:
        # held whole from here, and parsed by protobuf beside it: a file of a few hundred KB zipped
        # may inflate to MAX_KEY_FILE_BYTES, so its signature is checked first, streamed
        digest = None
        if check is not None:
            digest = _sha256(open_bin)
            check(digest)
        if size > MAX_WHOLE_PARSE_BYTES:
            raise KeyFileError(
                f"export.bin ({size} bytes) is not in the form key servers write, and too large to be "
                f"parsed whole (limit {MAX_WHOLE_PARSE_BYTES} bytes)"
            )
        data = _read_whole(open_bin, size)
        if digest is not None and hashlib.sha256(data).digest() != digest:
            raise KeyFileError("export.bin changed while it was read: not the bytes whose signature was checked")
        export = parse_whole_export_bin(data)
        if sink is None:
            return export
        del data
        sink.restart()
        sink.add(export.keys)
        return replace(export, keys=empty_keys(0))
    if check is not None:
        check(streamed.digest)
    if streamed.problem is not None:
        raise KeyFileError(streamed.problem)
    return ExportFile(
        start_timestamp=streamed.start_timestamp,
        end_timestamp=streamed.end_timestamp,
        region=streamed.region,
        batch_num=streamed.batch_num,
        batch_size=streamed.batch_size,
        signature_infos=tuple(SignatureInfo.from_pb(s) for s in streamed.signature_infos),
        keys=streamed.keys,
        revised_keys=streamed.revised_keys,
    )


class _Dropped:
    """A ``KeySink`` for a second read that is only to say what is wrong with a file."""

    def add(self, keys: np.ndarray) -> None:
        pass

    def restart(self) -> None:
        pass


_DROPPED = _Dropped()


def _unchanged(expected: bytes, digest: bytes) -> None:
    if digest != expected:
        raise KeyFileError("export.bin changed while it was read: not the bytes whose signature was checked")


def _sha256(open_bin: Callable[[], AbstractContextManager[BinaryIO]]) -> bytes:
    """The SHA-256 of what ``open_bin`` opens, read ``PIECE`` bytes at a time."""
    hasher = hashlib.sha256()
    with open_bin() as stream:
        while piece := stream.read(PIECE):
            hasher.update(piece)
    return hasher.digest()


def _read_whole(open_bin: Callable[[], AbstractContextManager[BinaryIO]], size: int) -> bytearray:
    """What ``open_bin`` opens, ``size`` bytes at most, read ``PIECE`` bytes at a time into one buffer:
    a zip member's ``read()`` of it all joins its pieces as it goes, holding the file twice."""
    data = bytearray(size)
    got = 0
    with open_bin() as stream:
        while piece := stream.read(PIECE):
            if got + len(piece) > size:
                raise KeyFileError(f"export.bin is longer than the {size} bytes it was said to hold")
            data[got : got + len(piece)] = piece
            got += len(piece)
    del data[got:]
    return data


def parse_whole_export_bin(data: bytes | bytearray) -> ExportFile:
    """An ``export.bin`` parsed whole by protobuf (upb): what ``read_export_bin`` falls back to
    for whatever its streaming reader leaves alone, and the reference it is tested against."""
    import bluezone.keyformat.gaen_export_pb2 as pb  # (~12 ms: see the imports above)

    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"export.bin too large ({len(data)} bytes, limit {MAX_KEY_FILE_BYTES})")
    if not data.startswith(EXPORT_HEADER):
        raise KeyFileError(header_problem(bytes(data[: len(EXPORT_HEADER)])))
    body = memoryview(data)[len(EXPORT_HEADER) :]  # not a copy: a file left to protobuf may be 256 MB
    # keys arrive as raw message bytes and are decoded column-wise (``tekwire``): no Python object
    # per key; what that decoder leaves alone goes through protobuf's message objects instead
    message = raw_export_class(pb.TemporaryExposureKeyExport.DESCRIPTOR)()
    try:
        message.ParseFromString(body)
        keys, revised = decode_keys(message.keys), decode_keys(message.revised_keys)
        if keys is None or revised is None:
            full = pb.TemporaryExposureKeyExport.FromString(body)
            keys, revised = columns_from_messages(full.keys), columns_from_messages(full.revised_keys)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise KeyFileError(f"export.bin is not a valid TemporaryExposureKeyExport: {exc}") from None
    region = message.region  # upb gives bytes for a string that is not UTF-8
    return ExportFile(
        start_timestamp=message.start_timestamp,
        end_timestamp=message.end_timestamp,
        region=region.decode("utf-8", "replace") if isinstance(region, bytes) else region,
        batch_num=message.batch_num,
        batch_size=message.batch_size,
        signature_infos=tuple(SignatureInfo.from_pb(s) for s in message.signature_infos),
        keys=keys_from_columns(keys, "keys"),
        revised_keys=keys_from_columns(revised, "revised_keys"),
    )


def parse_export_bin(data: bytes) -> np.ndarray:
    """The diagnosis keys (``KEY_DTYPE``) of an ``export.bin``, revisions applied; what ``load_keys`` calls."""
    return read_export_bin(data).current_keys()


def build_export_bin(
    keys: np.ndarray,
    *,
    region: str,
    batch_num: int = 1,
    batch_size: int = 1,
    signature_infos: Sequence[SignatureInfo] = (),
    start_timestamp: int | None = None,
    end_timestamp: int | None = None,
    revised_keys: np.ndarray | None = None,
) -> bytes:
    """``export.bin`` bytes for ``keys`` (``KEY_DTYPE``), in the order given, and for
    ``revised_keys``: keys published before whose report type has changed since.

    The time window defaults to the span of all of them: first rolling start to last key end.
    """
    import bluezone.keyformat.gaen_export_pb2 as pb  # (~12 ms: see the imports above)

    message = pb.TemporaryExposureKeyExport(region=region, batch_num=batch_num, batch_size=batch_size)
    revised = empty_keys(0) if revised_keys is None else revised_keys
    every = np.concatenate([keys, revised]) if len(revised) else keys
    if len(every):
        starts = every["rolling_start"].astype(np.int64)
        ends = starts + every["rolling_period"].astype(np.int64)
        start_timestamp = int(starts.min()) * INTERVAL_SECONDS if start_timestamp is None else start_timestamp
        end_timestamp = int(ends.max()) * INTERVAL_SECONDS if end_timestamp is None else end_timestamp
    message.start_timestamp = start_timestamp or 0
    message.end_timestamp = end_timestamp or 0
    message.signature_infos.extend(s.to_pb() for s in signature_infos)
    # the header through protobuf, the keys (fields 7 and 8, serialised last) column-wise: the same bytes
    header = message.SerializeToString(deterministic=True)
    return EXPORT_HEADER + header + encode_keys(keys, KEYS_FIELD) + encode_keys(revised, REVISED_KEYS_FIELD)


# --- signatures -------------------------------------------------------------------------------


def load_public_key(data: bytes | str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM, DER, or base64 DER (the form GAEN apps are configured with)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    raw = data.encode() if isinstance(data, str) else data
    key = None
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(raw)
        else:
            try:
                der = base64.b64decode(b"".join(raw.split()), validate=True)
            except (binascii.Error, ValueError):
                der = raw
            key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ExportSignatureError(f"not a valid public key: {exc}") from None
    except UnsupportedAlgorithm:  # an EC key on a curve OpenSSL lacks, or with explicit parameters (no ValueError)
        raise ExportSignatureError("the export signing key must be an ECDSA P-256 public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ExportSignatureError("the export signing key must be an ECDSA P-256 public key")
    return key


def public_key_base64(key: ec.EllipticCurvePublicKey) -> str:
    """DER SubjectPublicKeyInfo, base64: the string clients pin."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def sign_export(
    export_bin: bytes,
    private_key: ec.EllipticCurvePrivateKey,
    info: SignatureInfo,
    batch_num: int = 1,
    batch_size: int = 1,
) -> bytes:
    """``export.sig`` bytes: a TEKSignatureList with one ECDSA P-256/SHA-256 signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    import bluezone.keyformat.gaen_export_pb2 as pb  # (~12 ms: see the imports above)

    signature = private_key.sign(export_bin, ec.ECDSA(hashes.SHA256()))
    sig_list = pb.TEKSignatureList()
    sig_list.signatures.add(
        signature_info=info.to_pb(), batch_num=batch_num, batch_size=batch_size, signature=signature
    )
    return sig_list.SerializeToString(deterministic=True)


def verify_export_sig(
    export_bin: bytes,
    export_sig: bytes,
    public_key: ec.EllipticCurvePublicKey,
    key_id: str | None = None,
) -> SignatureInfo:
    """Check ``export_sig`` over ``export_bin``; the SignatureInfo that verified, else ExportSignatureError.

    With ``key_id`` only signatures naming that key are tried (a server may sign with several keys).
    """
    return _verify_digest(hashlib.sha256(export_bin).digest(), _signatures(export_sig, key_id), public_key)


def _signatures(export_sig: bytes, key_id: str | None) -> list[pb.TEKSignature]:
    """The signatures of ``export.sig`` that may be checked (those naming ``key_id``, if given)."""
    import bluezone.keyformat.gaen_export_pb2 as pb  # (~12 ms: see the imports above)

    sig_list = pb.TEKSignatureList()
    try:
        sig_list.ParseFromString(export_sig)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise ExportSignatureError(f"export.sig is not a valid TEKSignatureList: {exc}") from None
    candidates = [
        s for s in sig_list.signatures if key_id is None or s.signature_info.verification_key_id == key_id
    ]
    if not candidates:
        named = f" for key id {key_id!r}" if key_id is not None else ""
        raise ExportSignatureError(f"export.sig has no signature{named}")
    return candidates


def _verify_digest(digest: bytes, candidates: list[pb.TEKSignature], public_key: ec.EllipticCurvePublicKey) -> SignatureInfo:
    """The SignatureInfo of the first candidate that verifies over ``export.bin``'s SHA-256 ``digest``
    (ECDSA over a prehashed digest: the same check as over the bytes, for a streamed file)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    for s in candidates:
        if s.signature_info.signature_algorithm not in ("", ECDSA_P256_SHA256):
            continue
        try:
            public_key.verify(s.signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except (InvalidSignature, ValueError):
            continue
        return SignatureInfo.from_pb(s.signature_info)
    raise ExportSignatureError("export signature does not verify against the pinned public key")


# --- the zip ----------------------------------------------------------------------------------

#: An export zip's central directory lists export.bin and export.sig in ~120 bytes.
MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024


def _open_archive(file: BinaryIO) -> zipfile.ZipFile:
    """``zipfile.ZipFile(file)`` once its end record says the central directory is small.  zipfile makes
    an object of every central directory entry before anything can be looked at: a 256 MiB zip of 3
    million empty entries took ~1.4 GB and ~45 s per read before 'no export.bin' (a check downloads a
    batch, and reads it, before its signature is known).  The end record is found as zipfile finds it
    (its ``_EndRecData``, where this Python has it), so both read the same size."""
    find_end = getattr(zipfile, "_EndRecData", None)
    end = find_end(file) if find_end is not None else None
    if end is not None and end[zipfile._ECD_SIZE] > MAX_CENTRAL_DIRECTORY_BYTES:  # type: ignore[attr-defined]
        raise KeyFileError(
            f"not an export zip: its directory takes {end[zipfile._ECD_SIZE]:,} bytes"  # type: ignore[attr-defined]
            f" ({end[zipfile._ECD_ENTRIES_TOTAL]:,} entries; an export zip lists export.bin and export.sig)"  # type: ignore[attr-defined]
        )
    file.seek(0)
    return zipfile.ZipFile(file)


def _members(archive: zipfile.ZipFile) -> tuple[zipfile.ZipInfo | None, zipfile.ZipInfo | None]:
    """export.bin's and export.sig's entries, None if absent.  Either named twice is refused:
    zipfile reads the last copy, other tools the first, so one signature could vouch for two files."""
    found: dict[str, list[zipfile.ZipInfo]] = {EXPORT_BIN: [], EXPORT_SIG: []}
    for info in archive.infolist():
        if info.filename in found:
            found[info.filename].append(info)
    for name, infos in found.items():
        if len(infos) > 1:
            raise KeyFileError(f"export zip holds {name} twice: not a valid export file")
    return next(iter(found[EXPORT_BIN]), None), next(iter(found[EXPORT_SIG]), None)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo | None) -> bytes | None:
    if info is None:
        return None
    name = info.filename
    limit = MAX_SIG_FILE_BYTES if name == EXPORT_SIG else MAX_KEY_FILE_BYTES
    if info.file_size > limit:
        raise KeyFileError(f"{name} in the export zip is too large ({info.file_size} bytes, limit {limit})")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise KeyFileError(f"{name} in the export zip is too large")
    return data


def read_export_zip(data: bytes) -> tuple[bytes, bytes | None]:
    """(export.bin, export.sig or None) from the bytes of an export zip."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"export zip too large ({len(data)} bytes, limit {MAX_KEY_FILE_BYTES})")
    try:
        with _open_archive(io.BytesIO(data)) as archive:
            bin_info, sig_info = _members(archive)
            export_bin = _read_member(archive, bin_info)
            export_sig = _read_member(archive, sig_info)
    except KeyFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/zlib raise many kinds on corrupt input
        raise KeyFileError(f"not a valid export zip: {type(exc).__name__}: {exc}") from None
    if export_bin is None:
        raise KeyFileError(f"export zip has no {EXPORT_BIN}")
    return export_bin, export_sig


def read_signed_export_zip(
    data: bytes, public_key: ec.EllipticCurvePublicKey, key_id: str | None = None
) -> tuple[bytes, SignatureInfo]:
    """(export.bin, the SignatureInfo that verified) of a signed export zip: its signature is
    checked over export.bin streamed from the zip before export.bin is held (a zip of a few
    hundred KB may inflate to MAX_KEY_FILE_BYTES); for files read whole, such as venue warnings."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"export zip too large ({len(data)} bytes, limit {MAX_KEY_FILE_BYTES})")
    with _as_zip_error():
        archive = _open_archive(io.BytesIO(data))
    with archive:
        with _as_zip_error():
            info, sig_info = _members(archive)
            export_sig = _read_member(archive, sig_info)
        if info is None:
            raise KeyFileError(f"export zip has no {EXPORT_BIN}")
        if export_sig is None:
            raise ExportSignatureError(f"export zip has no {EXPORT_SIG}: unsigned files are not used")
        if info.file_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{EXPORT_BIN} in the export zip is too large ({info.file_size} bytes)")
        candidates = _signatures(export_sig, key_id)
        digest = _sha256(lambda: _Member(archive, info))
        verified = _verify_digest(digest, candidates, public_key)
        export_bin = bytes(_read_whole(lambda: _Member(archive, info), info.file_size))
    _unchanged(digest, hashlib.sha256(export_bin).digest())
    return export_bin, verified


def parse_export_zip(data: bytes) -> np.ndarray:
    """The keys of an export zip, signature not checked (``load_keys``: the user chose the file)."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"export zip too large ({len(data)} bytes, limit {MAX_KEY_FILE_BYTES})")
    export, _ = _open_zip(io.BytesIO(data))
    return export.current_keys()


def open_signed_export(
    data: bytes, public_key: ec.EllipticCurvePublicKey, key_id: str | None = None
) -> tuple[ExportFile, SignatureInfo]:
    """Parse an export zip only if its signature verifies; what a downloading client uses."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"export zip too large ({len(data)} bytes, limit {MAX_KEY_FILE_BYTES})")
    export, info = _open_zip(io.BytesIO(data), public_key, key_id)
    assert info is not None  # _open_zip raised otherwise
    return export, info


def open_export(
    file: BinaryIO,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_id: str | None = None,
    sink: KeySink | None = None,
) -> tuple[ExportFile, SignatureInfo | None]:
    """An export ``.zip`` or bare ``export.bin`` from an open, seekable file, streamed: memory holds
    the keys and a few MB whatever the file's size (with ``sink``, not even the keys: they go to it
    as they are read, see ``_read_export``).  With ``public_key`` only a signed zip whose signature
    verifies is read (then the SignatureInfo that verified is returned, else None)."""
    magic = file.read(4)
    if magic == b"PK\x03\x04":
        file.seek(0)
        return _open_zip(file, public_key, key_id, sink)
    if public_key is not None:
        raise ExportSignatureError("a bare export.bin carries no signature: only a signed export .zip can be verified")
    size = file.seek(0, io.SEEK_END)
    return _read_export(lambda: _rewound(file), size, sink=sink), None


def _rewound(file: BinaryIO) -> AbstractContextManager[BinaryIO]:
    file.seek(0)
    return nullcontext(file)


def _open_zip(
    file: BinaryIO,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_id: str | None = None,
    sink: KeySink | None = None,
) -> tuple[ExportFile, SignatureInfo | None]:
    """The export in a zip, its ``export.bin`` inflated as it is parsed; with ``public_key`` only
    if the signature in its ``export.sig`` verifies (checked over the streamed bytes)."""
    with _as_zip_error():
        archive = _open_archive(file)
    with archive:
        with _as_zip_error():
            info, sig_info = _members(archive)
            export_sig = _read_member(archive, sig_info) if public_key is not None else None
        if info is None:
            raise KeyFileError(f"export zip has no {EXPORT_BIN}")
        if info.file_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{EXPORT_BIN} in the export zip is too large ({info.file_size} bytes)")
        verified: list[SignatureInfo] = []
        check: Callable[[bytes], object] | None = None
        if public_key is not None:
            if export_sig is None:
                raise ExportSignatureError(f"export zip has no {EXPORT_SIG}: unsigned batches are not used")
            candidates = _signatures(export_sig, key_id)
            check = lambda digest: verified.append(_verify_digest(digest, candidates, public_key))  # noqa: E731
        export = _read_export(lambda: _Member(archive, info), info.file_size, check, sink)
    return export, (verified[0] if verified else None)


@contextmanager
def _as_zip_error() -> Iterator[None]:
    try:
        yield
    except KeyFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/zlib raise many kinds on corrupt input
        raise KeyFileError(f"not a valid export zip: {type(exc).__name__}: {exc}") from None


class _Member:
    """A zip member read as it inflates; zipfile's and zlib's errors on a corrupt one are KeyFileError."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        self._archive, self._info = archive, info

    def __enter__(self) -> BinaryIO:
        with _as_zip_error():
            self._stream = self._archive.open(self._info)
        return self  # type: ignore[return-value]  # read() is all the reader uses

    def __exit__(self, *exc: object) -> None:
        self._stream.close()

    def read(self, n: int = -1) -> bytes:
        with _as_zip_error():
            return self._stream.read(n)


def write_export_zip(export_bin: bytes, export_sig: bytes) -> bytes:
    """The zip holding ``export.bin`` and ``export.sig``, byte-for-byte reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in ((EXPORT_BIN, export_bin), (EXPORT_SIG, export_sig)):
            info = zipfile.ZipInfo(name, _ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def signed_export_zip(
    keys: np.ndarray,
    private_key: ec.EllipticCurvePrivateKey,
    info: SignatureInfo,
    *,
    region: str,
    batch_num: int = 1,
    batch_size: int = 1,
    start_timestamp: int | None = None,
    end_timestamp: int | None = None,
    revised_keys: np.ndarray | None = None,
) -> bytes:
    """A complete signed export zip for ``keys`` (and ``revised_keys``)."""
    export_bin = build_export_bin(
        keys,
        region=region,
        batch_num=batch_num,
        batch_size=batch_size,
        signature_infos=[info],
        start_timestamp=start_timestamp,
        end_timestamp=end_timestamp,
        revised_keys=revised_keys,
    )
    return write_export_zip(export_bin, sign_export(export_bin, private_key, info, batch_num, batch_size))


def load_export(path: str | Path) -> ExportFile:
    """Parse an ``export.bin`` or export ``.zip`` from a file (signature not checked), streamed."""
    with Path(path).open("rb") as file:
        export, _ = open_export(file)
    return export
