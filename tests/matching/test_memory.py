"""The memory a process may use: MemAvailable within its cgroup's limit (v2 and v1), read from fake
``proc`` and ``sys/fs/cgroup`` trees laid out as Docker, Kubernetes and systemd make them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluezone.errors import InputError
from bluezone.matching.benchmark import check_fits
from bluezone.matching.memory import available_memory, cgroup_headroom

GiB, MiB = 2**30, 2**20
HOST_AVAILABLE = 24 * GiB
V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "35 31 0:32 {root} /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)


def _write(root: Path, files: dict[str, str]) -> Path:
    files = {"proc/meminfo": f"MemTotal: 25165824 kB\nMemAvailable: {HOST_AVAILABLE // 1024} kB\n", **files}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _v2(root: Path, cgroup: str, levels: dict[str, tuple[str, int, int]]) -> Path:
    """A cgroup v2 host; ``levels``: directory -> (memory.max, memory.current, inactive_file)."""
    files = {"proc/self/mountinfo": V2_MOUNT, "proc/self/cgroup": f"0::{cgroup}\n"}
    for directory, (limit, current, inactive) in levels.items():
        base = f"sys/fs/cgroup/{directory}/".replace("//", "/")
        files[base + "memory.max"] = f"{limit}\n"
        files[base + "memory.current"] = f"{current}\n"
        files[base + "memory.stat"] = f"anon {current - inactive}\nfile {inactive}\ninactive_file {inactive}\n"
    return _write(root, files)


def test_a_2_gib_container_on_a_24_gib_host(tmp_path: Path) -> None:
    """Docker with a cgroup namespace: the container sees its own cgroup as the root ('0::/')."""
    root = _v2(tmp_path, "/", {"": (str(2 * GiB), 300 * MiB, 100 * MiB)})
    assert available_memory(root) == 2 * GiB - 200 * MiB  # the page cache it may drop is not held
    with pytest.raises(InputError, match="give fewer"):  # issue 17's largest day would not fit
        check_fits(6_000_000, 10_000_000, available_memory(root))
    check_fits(6_000_000, 10_000_000, HOST_AVAILABLE)  # as the host's MemAvailable alone said


def test_a_limit_above_the_process_cgroup_counts(tmp_path: Path) -> None:
    """systemd: the service's own cgroup has no limit, its slice does (MemoryMax= on the slice)."""
    root = _v2(tmp_path, "/bluezone.slice/bench.service", {
        "bluezone.slice": (str(1 * GiB), 600 * MiB, 0),
        "bluezone.slice/bench.service": ("max", 200 * MiB, 0),
    })
    assert cgroup_headroom(root) == 1 * GiB - 600 * MiB
    assert available_memory(root) == 1 * GiB - 600 * MiB


def test_cgroup_v1_as_older_docker_makes_it(tmp_path: Path) -> None:
    lid = "/docker/3f2a9c"
    files = {
        "proc/self/mountinfo": V1_MOUNTS.format(root=lid),  # the container's mount shows its own cgroup as /
        "proc/self/cgroup": f"12:memory:{lid}\n11:cpu,cpuacct:{lid}\n0::/\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{512 * MiB}\n",
        "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{100 * MiB}\n",
        "sys/fs/cgroup/memory/memory.stat": f"cache {40 * MiB}\ntotal_inactive_file {40 * MiB}\n",
    }
    assert available_memory(_write(tmp_path, files)) == 512 * MiB - 60 * MiB


def test_cgroup_v1_host_view_walks_up_to_the_limit(tmp_path: Path) -> None:
    files = {
        "proc/self/mountinfo": V1_MOUNTS.format(root="/"),
        "proc/self/cgroup": "4:memory:/process_api/9a9b\n0::/\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "no limit"
        "sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": f"{3 * GiB}\n",
        "sys/fs/cgroup/memory/process_api/memory.usage_in_bytes": f"{1 * GiB}\n",
        "sys/fs/cgroup/memory/process_api/9a9b/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/fs/cgroup/memory/process_api/9a9b/memory.usage_in_bytes": f"{100 * MiB}\n",
    }
    assert available_memory(_write(tmp_path, files)) == 2 * GiB


def test_no_limit_leaves_mem_available(tmp_path: Path) -> None:
    root = _v2(tmp_path, "/user.slice", {"user.slice": ("max", 5 * GiB, 0)})
    assert cgroup_headroom(root) is None and available_memory(root) == HOST_AVAILABLE
    assert available_memory(_write(tmp_path / "bare", {})) == HOST_AVAILABLE  # no cgroup files at all


def test_a_host_with_less_available_than_the_limit(tmp_path: Path) -> None:
    root = _v2(tmp_path, "/", {"": (str(64 * GiB), 0, 0)})
    assert available_memory(root) == HOST_AVAILABLE


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(
    st.sampled_from(["proc/self/cgroup", "proc/self/mountinfo", "sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current",
                     "sys/fs/cgroup/memory.stat", "proc/meminfo"]),
    st.text(max_size=200) | st.sampled_from(["0::/\n", V2_MOUNT, "max\n", "-5\n", "1e9\n", "inactive_file x\n", "MemAvailable:\n"]),
))
def test_any_file_contents_give_a_number_or_none(tmp_path_factory: pytest.TempPathFactory, files: dict[str, str]) -> None:
    root = tmp_path_factory.mktemp("cg")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(text.encode("utf-8", "surrogatepass"))
    got = available_memory(root)
    assert got is None or got >= 0
