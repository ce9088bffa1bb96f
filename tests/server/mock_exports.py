"""Signed export files served by an in-process mock host, and the same checks run on copies of one store:
what the tests of ``check --server``'s batch-by-batch keys and spooled revisions share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import strategies as st

from bluezone.client.check import ServerCheckResult, check_server
from bluezone.client.keyserver import KeyServerClient
from bluezone.client.pinning import PinnedKey
from bluezone.client.state import ServerState
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.keyformat.export import SignatureInfo, public_key_base64, signed_export_zip
from bluezone.keyformat.keys import REPORT_TYPE_RECURSIVE, REPORT_TYPE_REVOKED, empty_keys
from bluezone.matching.benchmark import synthetic_data
from bluezone.proximity.store import SightingStore

END = 1_760_000_000 // DAY_SECONDS * DAY_SECONDS  # a UTC midnight
NOW = END + 3 * 3600
N_KEYS = 48
INFO = SignatureInfo("bluezone-test", "v1")
SIGNER = ec.derive_private_key(12345, ec.SECP256R1())
PIN = PinnedKey(public_key_base64(SIGNER.public_key()), INFO.key_id)


def make_world(path: Path) -> np.ndarray:
    """48 keys (12 of them heard: planted in the store at ``path``, 3,000 sightings)."""
    keys, sightings, planted = synthetic_data(N_KEYS, 3000, 7, planted=12, end_time=END)
    assert planted == 12
    keys["report_type"] = 1  # confirmed
    with SightingStore.open(path) as store:
        store.add_sightings(sightings)
    return keys


def signed_file(keys: np.ndarray, rows: list[int], revisions: list[tuple[int, int]]) -> bytes:
    """An export of ``keys[rows]`` revising ``keys[k]`` to report type ``t`` for each (k, t) of ``revisions``."""
    revised = keys[[k for k, _ in revisions]].copy() if revisions else empty_keys(0)
    revised["report_type"] = [t for _, t in revisions] if revisions else revised["report_type"]
    return signed_export_zip(keys[rows] if rows else empty_keys(0), SIGNER, INFO, region="VN", revised_keys=revised)


def mock_client(files: dict[str, bytes], listed: list[str], fail: Callable[[str], None] | None = None) -> KeyServerClient:
    """A client of a static host serving ``files`` and listing ``listed``; ``fail(name)`` runs before each file is served."""

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "index.txt":
            return httpx.Response(200, text="".join(f"{n}\n" for n in listed))
        if name not in files:  # /v1/signing-key: a static host's exports, the key given by the node
            return httpx.Response(404)
        if fail is not None:
            fail(name)
        return httpx.Response(200, content=files[name])

    return KeyServerClient("http://keys.test", transport=httpx.MockTransport(handler), sleep=lambda s: None)


def run_checks(store_path: Path, files: dict[str, bytes], rounds: list[list[str]], in_memory: bool = False, **kw: object) -> list[dict]:
    """Each round's check (the index lists every name so far), as its JSON report; ``in_memory``: the
    store's sightings handed to the check (``load_sightings``) rather than read by it."""
    out, listed = [], []
    with SightingStore.open(store_path, create=False) as store:
        for names in rounds:
            listed += names
            with mock_client(files, listed) as client:
                load = store.sightings if in_memory else None
                result: ServerCheckResult = check_server(client, ServerState(store), load, server_key=PIN, now=NOW, **kw)  # type: ignore[arg-type]
            out.append({**result.as_dict(), "revoked": result.revoked, "rejected": result.rejected})
    return out


def store_copy(store: Path, to: Path) -> Path:
    shutil.copyfile(store, to)
    to.chmod(0o600)
    return to


def batch_sets(max_revisions: int = 3) -> st.SearchStrategy:
    """Random batches: keys (a key twice: a copy in the batch), revisions (key, new report type) and how
    many times the file is listed again under other names (a replay)."""
    return st.tuples(
        st.lists(st.integers(0, N_KEYS - 1), max_size=12),
        st.lists(
            st.tuples(st.integers(0, N_KEYS - 1), st.sampled_from([1, REPORT_TYPE_RECURSIVE, REPORT_TYPE_REVOKED])),
            max_size=max_revisions,
        ),
        st.integers(0, 2),
    )


def make_rounds(keys: np.ndarray, rounds_of_batches: list[list]) -> tuple[dict[str, bytes], list[list[str]]]:
    """The files of each round's batches (``batch_sets``), replays listed under other names."""
    files: dict[str, bytes] = {}
    rounds: list[list[str]] = []
    for batches in rounds_of_batches:
        names = []
        for rows, revisions, replays in batches:
            name = f"{1000 + len(files)}-00001.zip"
            files[name] = signed_file(keys, rows, revisions)
            names.append(name)
            for _ in range(replays):
                files[f"{2000 + len(files)}-00001.zip"] = files[name]
                names.append(f"{2000 + len(files) - 1}-00001.zip")
        rounds.append(names)
    return files, rounds


def said_under_a_full_disk(tmp_path: Path, setup: str, spool: str) -> str:
    """What ``spool`` (statements spooling 300,000 random ``keys``, after the ``setup`` lines) says, in a
    process of its own with a file size limit of 4 KiB (a full disk: the same OSError from write) and
    $TMPDIR at ``tmp_path``: the one line of its BluezoneError."""
    script = (
        "import resource, signal, numpy as np\n"
        "from bluezone.errors import BluezoneError\n"
        "from bluezone.keyformat.keys import empty_keys\n"
        "keys = empty_keys(300_000)\n"
        "keys['key'] = np.frombuffer(np.random.default_rng(1).bytes(16 * len(keys)), 'V16')\n"
        + setup
        + "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "try:\n" + "".join(f"    {line}\n" for line in spool.splitlines()) + "except BluezoneError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
