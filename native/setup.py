"""Tags the wheel by the prebuilt ``_rpi.so`` it carries (build-wheels.sh compiles it first).

The library is called through ctypes, not imported by Python, so the wheel fits every
Python 3 (``py3-none``) but only the architecture the library was built for: the platform
tag is read from the library's ELF header, so a wheel cannot be mislabelled.
"""

from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel

LIBRARY = Path(__file__).parent / "src" / "bluezone_native" / "_rpi.so"
# ELF e_machine -> architecture; build-wheels.sh targets glibc 2.17 (manylinux2014).
MACHINES = {62: "x86_64", 183: "aarch64"}


def library_arch() -> str:
    if not LIBRARY.is_file():
        raise SystemExit(f"{LIBRARY} is missing: build the wheels with native/build-wheels.sh")
    header = LIBRARY.read_bytes()[:20]
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        raise SystemExit(f"{LIBRARY} is not a 64-bit little-endian ELF library")
    machine = int.from_bytes(header[18:20], "little")
    if machine not in MACHINES:
        raise SystemExit(f"{LIBRARY}: unsupported ELF machine {machine}")
    return MACHINES[machine]


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True  # a binary: installed as platform-specific (platlib), never "any"


class PlatformWheel(bdist_wheel):
    def get_tag(self) -> tuple[str, str, str]:
        arch = library_arch()
        return "py3", "none", f"manylinux_2_17_{arch}.manylinux2014_{arch}"


setup(distclass=BinaryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
