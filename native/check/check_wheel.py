"""Run a built bluezone-native wheel's library and compare its RPIs with bluezone's Python path.

    .venv/bin/python native/check/check_wheel.py native/dist/bluezone_native-*.whl

For each wheel: its library's ELF machine must match the wheel's tag; a small C harness
(harness.c, compiled by the build's Zig for the same target) loads the library, which opens
that machine's libcrypto.so.3, and derives the RPIs of 2,000 seeded random keys (the GAEN test
vector's key among them, starts wrapping past 2**32), then builds the matcher's pre-filter from
every 1,000th of them (``bz_set_bits``) and derives those that pass it (``bz_rpis_passing``). A wheel for another architecture runs
under qemu user emulation; for aarch64 on Debian:
    dpkg --add-architecture arm64 && apt-get update
    apt-get install qemu-user-static libc6:arm64 libssl3:arm64
"""

from __future__ import annotations

import os

os.environ["BLUEZONE_NATIVE"] = "0"  # the reference is the Python path, whatever is installed

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ZIG_PYTHON = HERE.parent / ".build-venv" / "bin" / "python"  # made by build-wheels.sh
MACHINES = {62: "x86_64", 183: "aarch64"}
QEMU = {"aarch64": ("qemu-aarch64-static", "qemu-aarch64"), "x86_64": ("qemu-x86_64-static", "qemu-x86_64")}
GAEN_TEK, GAEN_START = bytes.fromhex("75c734c6dd1a782de7a965da5eb93125"), 2642976


def check(wheel: Path, keys: int, armcap: str | None) -> str:
    platform_tag = wheel.name.removesuffix(".whl").split("-")[-1].split(".")[0]  # manylinux_2_17_<arch>
    arch = platform_tag.split("_", 3)[-1]
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as zf:
            library = Path(tmp) / "_rpi.so"
            library.write_bytes(zf.read("bluezone_native/_rpi.so"))
        header = library.read_bytes()[:20]
        machine = MACHINES.get(int.from_bytes(header[18:20], "little"))
        if machine != arch:
            raise SystemExit(f"{wheel.name}: tagged {arch} but its library is for {machine}")
        harness = Path(tmp) / "harness"
        subprocess.run(
            [str(ZIG_PYTHON), "-m", "ziglang", "cc", "-target", f"{arch}-linux-gnu.2.17", "-O1",
             "-o", str(harness), str(HERE / "harness.c")],
            check=True,
        )
        command = [str(harness), str(library)]
        if arch != platform.machine():
            qemu = next((shutil.which(q) for q in QEMU[arch] if shutil.which(q)), None)
            if qemu is None:
                raise SystemExit(f"{wheel.name}: no qemu for {arch} (see this script's docstring)")
            command.insert(0, qemu)
        rng = np.random.default_rng(2026)
        teks = rng.integers(0, 256, (keys, 16), dtype=np.uint8)
        starts = (rng.integers(0, 14, keys) * 144 + 2_940_000).astype(np.int64)
        teks[7], starts[7] = np.frombuffer(GAEN_TEK, np.uint8), GAEN_START
        starts[8] = 2**32 - 5  # intervals wrap modulo 2**32
        from bluezone.crypto import derivation as rpi_module
        assert rpi_module.derivation_path().startswith("python")
        expected = rpi_module.rpis_for_keys(teks, starts)
        held = np.arange(0, keys * 144, 1000)
        sieve = _sieve(expected.reshape(-1, 16)[held], 24, 26)
        request = np.array([keys, 144], "<u4").tobytes() + teks.tobytes() + starts.astype("<u4").tobytes()
        request += np.array([sieve.bits1, sieve.bits2, len(held)], "<u4").tobytes() + held.astype("<u4").tobytes()
        env = dict(os.environ) if armcap is None else {**os.environ, "OPENSSL_armcap": armcap}
        run = subprocess.run(command, input=request, capture_output=True, check=False, env=env)
        if run.returncode != 0:
            raise SystemExit(f"{wheel.name}: the harness failed: {run.stderr.decode().strip()}")
        got = np.frombuffer(run.stdout[: expected.size], np.uint8).reshape(expected.shape)
        if not np.array_equal(got, expected):
            raise SystemExit(f"{wheel.name}: RPIs differ from the Python path")
        tables = run.stdout[expected.size :][: sieve.table1.size + sieve.table2.size]
        if tables != sieve.table1.tobytes() + sieve.table2.tobytes():
            raise SystemExit(f"{wheel.name}: the pre-filter's bit sets differ from numpy's")
        rest = run.stdout[expected.size + len(tables) :]
        passing = sieve.passing(expected)
        found = int(np.frombuffer(rest[:8], "<i8")[0]) if len(rest) >= 8 else -1
        tail = rest[8:]
        if found != len(passing) or len(tail) != found * 24:
            raise SystemExit(f"{wheel.name}: {found} RPIs passed the pre-filter, the Python path passes {len(passing)}")
        if not (np.array_equal(np.frombuffer(tail[: 8 * found], "<i8"), passing)
                and np.array_equal(np.frombuffer(tail[8 * found :], np.uint8).reshape(-1, 16), expected.reshape(-1, 16)[passing])):
            raise SystemExit(f"{wheel.name}: the pre-filtered RPIs differ from the Python path's")
        if got[7, 0].tobytes().hex() != "8be6cd371c5c891604bfbe49df845096":
            raise SystemExit(f"{wheel.name}: the GAEN test vector's first RPI differs")
        how = f"under {Path(command[0]).name}" if command[0] != str(harness) else "natively"
        how += "" if armcap is None or arch != "aarch64" else f", OPENSSL_armcap={armcap}"
        return (
            f"{wheel.name}: {keys} keys x 144 RPIs, a pre-filter's bit sets and the {found} RPIs passing it equal to the Python path "
            f"({how}, {run.stderr.decode().strip()})"
        )


def _sieve(rpis: np.ndarray, bits1: int, bits2: int):  # type: ignore[no-untyped-def]
    """The matcher's pre-filter (bluezone.crypto.derivation.Sieve) holding ``rpis``, by numpy (the helper is off here)."""
    from bluezone.crypto import derivation as rpi_module
    words = np.ascontiguousarray(rpis).view("<u4")
    return rpi_module.Sieve(rpi_module.bit_set(words[:, 0], bits1), bits1, rpi_module.bit_set(words[:, 1], bits2), bits2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument(
        "--armcap", help="OPENSSL_armcap for the run, e.g. 1: NEON without the AES/SHA instructions, as on a Raspberry Pi 4"
    )
    args = parser.parse_args()
    if not ZIG_PYTHON.exists():
        sys.exit(f"{ZIG_PYTHON} missing: run native/build-wheels.sh first")
    for wheel in args.wheels:
        print(check(wheel, args.keys, args.armcap), flush=True)


if __name__ == "__main__":
    main()
