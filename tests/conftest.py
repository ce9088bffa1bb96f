"""Suite-wide settings: deterministic hypothesis runs, no deadlines on a noisy 2-core machine."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings


def _no_constants_of_the_modules_imported_so_far() -> None:
    """Hypothesis draws some values from the constants in the project's modules imported so far; the suite imports
    bluezone's modules lazily, so which those were depended on the tests run before in the process (and on how
    xdist shared them out), and a derandomized test drew other examples in another order (the beacon flood test:
    1.4 s alone, 8 s after its file, 11-155 s in whole runs).  Without them a test's examples change only with the
    test and Hypothesis (tests/test_derandomized_examples.py fails if this stops working)."""
    try:
        from hypothesis.internal.conjecture.providers import HypothesisProvider
        from hypothesis.internal.constants_ast import Constants
    except ImportError:  # a Hypothesis that draws no such constants
        return
    HypothesisProvider._local_constants = Constants()  # type: ignore[assignment]  # for every provider and draw


_no_constants_of_the_modules_imported_so_far()

settings.register_profile(
    "bluezone",
    derandomize=True,  # same examples every run: the suite is deterministic
    deadline=None,
    max_examples=int(os.environ.get("BLUEZONE_HYPOTHESIS_EXAMPLES", "100")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("bluezone")

DATA = Path(__file__).parent / "data"

# The suite runs as from a terminal, Ctrl-C not ignored: started as a background job of a non-interactive shell
# (`make test &`), SIGINT is ignored, every process the tests start inherits that through exec, and the tests
# of Ctrl-C (tests/cli/test_ctrl_c.py, tests/test_inthread.py) sent their SIGINTs to processes deaf to them.
# Python's own handler is put back; a handler set from Python is reset to the default at a child's exec.
if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A developer's own ~/.config/bluezone/daemon.toml (bluezone calibrate writes one) or config.toml, and
    BLUEZONE_* variables of the shell (BLUEZONE_DB, BLUEZONE_CHECK_SERVER, ...), never reach a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))
    for name in list(os.environ):
        if name.startswith("BLUEZONE_") and name != "BLUEZONE_HYPOTHESIS_EXAMPLES":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """Each test starts with the suite's SIGINT, SIGTERM and SIGHUP handlers: a clean stop run in-process keeps a
    handler for the first signal's late copy until the next signal (stop_on_signals, 827dc0d), and the
    next test in that process (tests/test_inthread.py after tests/proximity/test_stopsignals.py) then hung
    or failed on the handler it found."""
    main = threading.current_thread() is threading.main_thread()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)} if main else {}
    yield
    for sig, handler in before.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test with a key server on the wall clock (``live_server``) is a ``wall_clock`` test."""
    for item in items:
        if "live_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.wall_clock)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[dict]:
    """The key server under uvicorn on 127.0.0.1 (the demo's loopback runner), its files in tmp_path:
    ``url``, ``db``, ``keys`` (the signing-key directory) and ``exports``."""
    from bluezone.demo import _LoopbackServer
    from bluezone.server.app import create_app
    from bluezone.server.codes import CodeKey
    from bluezone.server.signing import keygen, load_signer
    from bluezone.server.storage import SQLiteStorage

    db, keys, exports = tmp_path / "server.db", tmp_path / "signing", tmp_path / "exports"
    keygen(keys)
    storage = SQLiteStorage(db)
    app = create_app(storage, code_key=CodeKey.load(keys), export_dir=exports, signer=load_signer(keys))
    try:
        with _LoopbackServer(app) as url:
            yield {"url": url, "db": db, "keys": keys, "exports": exports}
    finally:
        storage.close()


@pytest.fixture
def schema11_credentials_store(tmp_path: Path) -> Path:
    """A node's store as bluezone wrote it at schema 11 before 617bc8f, its key servers named by URLs with
    credentials (``tests/data/stores/schema11_server_credentials.sql``), in WAL mode like every store, and
    written without SQLite's secure delete (as builds without SQLITE_SECURE_DELETE do): a deleted row's
    bytes stay in the file."""
    path = tmp_path / "node.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA secure_delete = 0")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript((DATA / "stores" / "schema11_server_credentials.sql").read_text())
    conn.close()
    path.chmod(0o600)
    return path
