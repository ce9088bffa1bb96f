"""Where the sighting store lives, and its folder and file made private (0700, 0600) before SQLite opens it."""

from __future__ import annotations

import os
from pathlib import Path

from bluezone.config import xdg_home
from bluezone.errors import StoreError, StoreReadOnlyError


DB_FILENAME = "bluezone.db"


#: Where ``bluezone run --backend emulated`` keeps its invented neighbours, beside the real store.
EMULATED_DB_FILENAME = "emulated.db"


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/bluezone/bluezone.db``, falling back to ``~/.local/share``."""
    return xdg_home("XDG_DATA_HOME", ".local/share") / "bluezone" / DB_FILENAME


#: Where packaging/bluezone.service keeps its store (its StateDirectory, 0700, the service user's).
SERVICE_DB = Path("/var/lib/bluezone/bluezone.db")


def _missing_store_hint(path: Path) -> str:
    """What to do about a missing store: the emulated daemon keeps emulated.db beside the real one,
    so someone who tried ``bluezone run --backend emulated`` is pointed at it; on a machine where the
    service runs, a user's own default store is none, and the service's is named with how to read it."""
    emulated = path.with_name(EMULATED_DB_FILENAME)
    if path.name != emulated.name and emulated.is_file():
        return f"`bluezone run --backend emulated` keeps its sightings in {emulated}: give --db {emulated}"
    if path != SERVICE_DB and path == default_db_path() and SERVICE_DB.parent.is_dir():
        return (f"the daemon's service keeps its store in {SERVICE_DB}: run the command as the service's user with"
                f" that --db, `sudo -u bluezone bluezone ... --db {SERVICE_DB}`; or give --db PATH")
    return "give --db PATH, or run `bluezone run` first"


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask


def _create_private_file(path: Path) -> None:
    """Create an empty 0600 file before SQLite opens it (SQLite gives -wal/-shm the same mode).

    A link made ahead to a file not there yet (the store kept on a larger disk) is made at the file
    it names: O_EXCL refuses any link, and SQLite, following it, made the store with the umask's mode
    (0644: daily keys and sightings readable by every user)."""
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the sighting database {path}: {exc.strerror}") from None
    os.close(fd)
    os.chmod(target, 0o600)


def on_read_only_file_system(path: Path) -> bool:
    """Whether the store at ``path`` (a link's file: SQLite's -wal and -shm go beside it) is on a file system mounted
    read-only: SQLite can make no -wal or -shm there, and nothing changes the store while it stays so."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_only_uri(path: Path) -> str:
    """The URI SQLite reads a store on a read-only file system by.  With no writes waiting in a ``-wal`` beside it
    (a store copied or mounted when closed), the file alone, as immutable: a WAL store read read-only needs its
    ``-shm``, which cannot be made there.  With its ``-wal`` and ``-shm`` (a crashed device's image), read-only
    through them, so the last writes are read too.  A ``-wal`` without its ``-shm`` is refused: the file alone
    would miss the sightings the WAL holds, and SQLite reads such a WAL only where it can make the ``-shm``."""
    real = os.path.realpath(path)  # (where SQLite looks for them)
    uri = Path(real).as_uri()
    try:
        waiting = os.stat(f"{real}-wal").st_size > 0
    except FileNotFoundError:
        waiting = False
    if not waiting:
        return f"{uri}?immutable=1"
    if os.path.exists(f"{real}-shm"):
        return f"{uri}?mode=ro"
    raise StoreReadOnlyError(
        f"cannot read {path}: it is on a read-only file system, with writes not yet in it waiting in its {path.name}-wal"
        f" and no {path.name}-shm, without which SQLite cannot read them there: copy the store and its -wal into a"
        " writable folder and give the copy with --db"
    )
