"""One exception tree, so callers (and the CLI) can tell input errors from radio trouble."""

from __future__ import annotations


class BluezoneError(Exception):
    """Root of every error bluezone raises on purpose."""

    exit_code = 1


class InputError(BluezoneError, ValueError):
    """Something the user gave us (a file, an argument, a config) is wrong: exit code 2."""

    exit_code = 2


class KeyFileError(InputError):
    """A diagnosis key file (JSON or GAEN export) is malformed."""


class ConfigError(InputError):
    """A configuration file or value is invalid."""


class PayloadError(InputError):
    """A received advertisement is not a valid 0xFD6F service-data payload."""


class StoreError(BluezoneError):
    """The sighting store cannot be opened or is in an unexpected state."""


class StoreWriteError(StoreError):
    """A write the store may take later (disk full, an I/O error, a lock held too long): the daemon
    keeps what it could not write and tries again."""


class NotAStoreError(StoreError, InputError):
    """The path given as a sighting database is none (missing, a directory, another program's file): exit code 2."""

    exit_code = 2


class RadioError(BluezoneError):
    """A radio backend failed while running."""


class RadioUnavailableError(RadioError):
    """No usable radio: ``reason`` says why (no adapter, powered off, permission, bluetoothd gone)."""

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason


class VenueError(InputError):
    """A venue check-in URL, QR payload, check-in or venue report is malformed or out of bounds."""
