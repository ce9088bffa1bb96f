"""A PostgreSQL server speaking another language (``lc_messages``) refusing the login: still one line, exit 2.

The refusal used to be recognised by PostgreSQL's English words only, so a German cluster's "Passwort-
Authentifizierung für Benutzer »keys« fehlgeschlagen" was "cannot connect to PostgreSQL", exit 1, and
systemd restarted the server every 5 s for ever.  psycopg gives no SQLSTATE for a failed connection
(``diag`` is empty: libpq keeps the server's error to itself), so the refusal is told by what libpq says
of the login whatever the language: the server asked for a password, got it, and ended the connection.
The cluster here really runs in German (a locale built with ``localedef``, PostgreSQL's own catalogs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import pg_bin

from bluezone.errors import ConfigError, ServerStorageError
from bluezone.server.storage import open_storage


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":  # CI installs `locales` and `postgresql` (.ci/run): a missing one is a failure
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def german_cluster() -> Iterator[Path]:
    """A private cluster with lc_messages=de_DE.UTF-8 and password (SCRAM) logins; yields its socket directory.
    Role ``keys`` with password ``secret``."""
    bindir = pg_bin()
    if bindir is None:
        _unavailable("PostgreSQL binaries not found")
    version = bindir.parent.name
    if not Path(f"/usr/share/locale/de/LC_MESSAGES/postgres-{version}.mo").exists():
        _unavailable(f"PostgreSQL {version}'s German messages are not installed")
    if shutil.which("localedef") is None or not Path("/usr/share/i18n/locales/de_DE").exists():
        _unavailable("localedef or the de_DE locale source is missing (Debian: apt-get install locales)")
    root = Path(tempfile.mkdtemp(prefix="bluezone-pg-de-"))
    locales, data, sock = root / "locales", root / "data", root / "sock"
    sock.mkdir()
    locales.mkdir()
    prefix: list[str] = []
    try:
        subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
                       check=True, capture_output=True, timeout=300)
        (root / "pw").write_text("secret\n")
        if os.geteuid() == 0:  # initdb refuses to run as root
            subprocess.run(["chown", "-R", "postgres", str(root)], check=True)
            os.chmod(root, 0o755)
            prefix = ["runuser", "-u", "postgres", "--"]
        env = {**os.environ, "LC_ALL": "C", "LOCPATH": str(locales)}
        subprocess.run(
            [*prefix, "env", f"LOCPATH={locales}", str(bindir / "initdb"), "-D", str(data), "-A", "scram-sha-256",
             "--pwfile", str(root / "pw"), "-U", "keys", "-E", "UTF8", "--lc-messages=de_DE.UTF-8", "--no-sync"],
            check=True, capture_output=True, env=env, timeout=120,
        )
        subprocess.run(
            [*prefix, "env", f"LOCPATH={locales}", str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
             str(root / "log"), "-o", f"-k {sock} -c listen_addresses= -c fsync=off", "start"],
            check=True, capture_output=True, env=env, timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"could not start a German PostgreSQL cluster: {exc} {detail.decode(errors='replace')[-300:]}")
    try:
        yield sock
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_a_wrong_password_in_german_is_a_refused_login(german_cluster: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        open_storage(f"postgresql://keys:wrong@/postgres?host={german_cluster}")
    message = str(refused.value)
    assert message.startswith("PostgreSQL refused the login: ") and "check the user, password" in message
    assert "Passwort-Authentifizierung" in message and "wrong" not in message  # the server's own words, no password
    assert ConfigError.exit_code == 2


@pytest.mark.slow
def test_a_missing_database_or_role_in_german_is_a_refused_login(german_cluster: Path) -> None:
    with pytest.raises(ConfigError, match="nodb.{1,3} existiert nicht"):
        open_storage(f"postgresql://keys:secret@/nodb?host={german_cluster}")
    with pytest.raises(ConfigError, match="PostgreSQL refused the login"):
        open_storage(f"postgresql://nobody:secret@/postgres?host={german_cluster}")
    with pytest.raises(ConfigError, match="no password supplied"):
        open_storage(f"postgresql://keys@/postgres?host={german_cluster}")


@pytest.mark.slow
def test_the_right_login_works_and_a_server_gone_is_still_worth_retrying(german_cluster: Path, tmp_path: Path) -> None:
    open_storage(f"postgresql://keys:secret@/postgres?host={german_cluster}").close()
    with pytest.raises(ServerStorageError, match="cannot connect to PostgreSQL"):
        open_storage(f"postgresql://keys:secret@/postgres?host={tmp_path}")  # no server there: exit 1, retried
