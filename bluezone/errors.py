"""Every exception bluezone raises on purpose, in one tree, so callers (and the CLI) can catch
by kind: bad input apart from radio trouble apart from a key server's refusal.

* BluezoneError
  + InputError (also ValueError) - something the user gave is wrong; the CLI exits 2
  | + KeyFileError - a diagnosis key file (JSON, export.bin, export zip)
  | | + ExportSignatureError - an export's signature is missing or does not verify
  | + ConfigError - a configuration file or value
  | + PayloadError - a received advert is no valid 0xFD6F payload
  | + DatasetError - a recorded dataset directory
  | + CalibrationTableError - a device calibration table (CSV)
  | + UnknownDeviceError - a device model the calibration table does not know
  | + CalibrationError - a calibration measurement gives no usable calibration
  | | + ReferenceNotHeardError - no advert of the reference device arrived
  | | + TooFewAdvertsError - the reference was heard too rarely
  | + VenueError - a venue check-in URL, QR payload, check-in or venue report
  | + NotAStoreError (also StoreError) - the path is no sighting database
  | + StoreLinkedError (also StoreError) - the store's file has two names (hard links)
  + StoreError - the sighting store cannot be used
  | + StoreWriteError - a write the store may take later (disk full, I/O error, lock held)
  | + StoreInUseError - another daemon runs on this store
  | + StoreReadOnlyError - the store cannot be written: its file, folder or file system is read-only
  + MatchWorkerError - a worker process deriving keys for a check ended before handing back its work
  + RadioError - a radio backend failed
  | + RadioUnavailableError - no usable radio; ``reason`` (RadioUnavailableReason) carries the fix
  | + BluezCallError - BlueZ answered a D-Bus call with an error
  + KeyServerError - (node) a key server refused a request or could not be reached
  | + UploadRefusedError (also InputError) - an upload refused for something the user can fix
  | + TransientKeyServerError - worth another try (connection, read timeout, 429/502/503/504)
  + ServerKeyChangedError - (node) the server's export key is not the one pinned
  + RejectedBatchesError - (node) downloaded batches failed verification and were not used
  + ServerError - (key server) something the server itself refuses or fails at
    + CodeLimitError (also InputError) - no more codes of a kind may be issued now
    + ServeError - the server cannot start listening (port in use, no permission)
    + ServerStorageError - the key server's database
    | + NotScratchDatabaseError (also InputError) - a benchmark was given a key server's own database
    | + NewerSchemaError (also InputError) - the database was migrated by a newer bluezone
    + PublishError - a refused upload, with its HTTP status and GAEN error code
    + RevisionRefused (also ValueError) - an upload may not change keys already published
"""

from __future__ import annotations

from enum import StrEnum


class BluezoneError(Exception):
    """Root of every error bluezone raises on purpose."""

    exit_code = 1


# --- bad input --------------------------------------------------------------------------------


class InputError(BluezoneError, ValueError):
    """Something the user gave us (a file, an argument, a config) is wrong: exit code 2."""

    exit_code = 2


class KeyFileError(InputError):
    """A diagnosis key file (JSON or GAEN export) is malformed."""


class ExportSignatureError(KeyFileError):
    """An export's signature is missing, malformed, or does not verify against the pinned key."""


class ConfigError(InputError):
    """A configuration file or value is invalid."""


class PayloadError(InputError):
    """A received advertisement is not a valid 0xFD6F service-data payload."""


class DatasetError(InputError):
    """A dataset directory cannot be read."""


class CalibrationTableError(InputError):
    """A calibration table cannot be read (wrong header, malformed row)."""


class UnknownDeviceError(InputError):
    """A device model is not in the calibration table."""


class CalibrationError(InputError):
    """The measurement cannot give a calibration (reference not heard, too few adverts, implausible)."""


class ReferenceNotHeardError(CalibrationError):
    """No advert of the reference device arrived."""


class TooFewAdvertsError(CalibrationError):
    """The reference was heard, but too rarely for a median to mean anything."""


class VenueError(InputError):
    """A venue check-in URL, QR payload, check-in or venue report is malformed or out of bounds."""


# --- the sighting store -----------------------------------------------------------------------


class StoreError(BluezoneError):
    """The sighting store cannot be opened or is in an unexpected state."""


class StoreWriteError(StoreError):
    """A write the store may take later (disk full, an I/O error, a lock held too long): the daemon
    keeps what it could not write and tries again."""


class StoreInUseError(StoreError):
    """Another bluezone daemon already runs on this store: both would broadcast its daily key and
    hear each other, and its owner would be its own close contact."""


class StoreReadOnlyError(StoreError):
    """The store can be read but not written (the file's or its folder's permissions, a read-only
    mount): said as such, not as a damaged database, whose advice (move it away) would be wrong."""


class NotAStoreError(StoreError, InputError):
    """The path given as a sighting database is none (missing, a directory, another program's file): exit code 2."""

    exit_code = 2


class StoreLinkedError(StoreError, InputError):
    """The store's file has more than one name (hard links): SQLite keeps its write-ahead log by name, so two
    processes writing it under two names corrupt it.  Exit code 2: a restart (systemd's) does not fix it."""

    exit_code = 2


# --- radios -----------------------------------------------------------------------------------


class MatchWorkerError(BluezoneError):
    """A forked worker of ``check --jobs`` ended (killed, out of memory) while holding keys to derive."""


class RadioError(BluezoneError):
    """A radio backend failed while running."""


class RadioUnavailableReason(StrEnum):
    """Why no radio can be used, each with what the user can do about it (``fix``).

    A ``StrEnum``, so a reason compares equal to its short name (``"powered-off"``).
    """

    fix: str

    def __new__(cls, value: str, fix: str = "") -> RadioUnavailableReason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.fix = fix
        return member

    NO_DBUS = "no-dbus", "start the system D-Bus (apt install dbus; systemctl start dbus)"
    BLUETOOTHD_NOT_RUNNING = "bluetoothd-not-running", "start BlueZ: sudo systemctl enable --now bluetooth"
    NO_ADAPTER = "no-adapter", "plug in a Bluetooth adapter or check `bluetoothctl list` / `rfkill list`"
    POWERED_OFF = "powered-off", "power it on: `bluetoothctl power on` (and `rfkill unblock bluetooth`)"
    PERMISSION = "permission", (
        "run as a user in the `bluetooth` group (Debian/Raspberry Pi OS) or as the "
        "bluezone service user (see docs/bluetooth.md)"
    )
    NO_PASSIVE_SCAN = "no-passive-scan", "ask for scan_mode='active' or 'auto'"
    UNKNOWN = "unknown"


class RadioUnavailableError(RadioError):
    """No usable radio: ``reason`` says why (no adapter, powered off, permission, bluetoothd gone).

    ``what`` is the finding alone and ``fix`` what to do (the reason's own fix unless given);
    the message is both, joined by a semicolon.
    """

    def __init__(
        self,
        what: str,
        reason: RadioUnavailableReason | str = RadioUnavailableReason.UNKNOWN,
        fix: str | None = None,
    ) -> None:
        self.reason = RadioUnavailableReason(reason)
        self.what = what
        self.fix = self.reason.fix if fix is None else fix
        super().__init__(f"{what}; {self.fix}" if self.fix else what)


class BluezCallError(RadioError):
    """A D-Bus call to BlueZ returned an error reply (``name`` is the D-Bus error name)."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text


# --- the node's key-server client -------------------------------------------------------------


class KeyServerError(BluezoneError):
    """The key server refused a request or could not be reached; ``code`` is its error code."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TransientKeyServerError(KeyServerError):
    """A failure worth another try: the connection, a read timeout, 429/502/503/504.  The client
    retries these with backoff; only the last one reaches the caller."""


class UploadRefusedError(KeyServerError, InputError):
    """The server refused an upload for something the user can fix (a used, wrong or expired code,
    keys from before a close contact's exposure date): exit code 2."""

    exit_code = 2


class ServerKeyChangedError(BluezoneError):
    """The server's export key is not the pinned one: someone may be impersonating it."""


class RejectedBatchesError(BluezoneError):
    """Some downloaded batches were not used: their signature is missing or wrong."""


# --- the key server ---------------------------------------------------------------------------


class ServerError(BluezoneError):
    """The key server refuses a request or cannot do its work."""


class CodeLimitError(ServerError, InputError):
    """No more codes of a kind may be issued now (the limit on recursive codes): exit code 2."""

    exit_code = 2


class ServeError(ServerError):
    """The server cannot start listening (port in use, no permission, unknown address)."""


class ServerStorageError(ServerError):
    """The key server's database cannot be opened or used."""


class NotScratchDatabaseError(ServerStorageError, InputError):
    """``server benchmark`` was pointed at a database holding a key server's own data: exit code 2."""

    exit_code = 2


class NewerSchemaError(ServerStorageError, InputError):
    """The key server's database has a newer schema than this bluezone knows (a downgrade, or one host not
    upgraded): exit code 2, which systemd does not restart every 5 s for ever."""

    exit_code = 2


class PublishError(ServerError):
    """A refused publish: ``status`` (HTTP) and ``code`` (machine readable)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "error": str(self)}


class RevisionRefused(ServerError, ValueError):
    """An upload would change the report type of keys already on the server, and may not.

    ``args[0]`` is the machine-readable reason, as GAEN's reference server names it:
    ``missing_revision_token`` / ``invalid_revision_token`` (the uploader did not show a token it
    got with those keys), ``invalid_report_type_transition`` (a report only becomes more certain,
    recursive -> likely -> confirmed, or revoked while not confirmed) or ``key_already_revised`` (a
    confirmed or revoked key is final).
    """
