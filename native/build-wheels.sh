#!/usr/bin/env bash
# Builds bluezone-native's wheels for Linux x86-64 and aarch64 (Raspberry Pi OS 64-bit) on any
# Linux machine, without docker: Zig (from PyPI) is the C cross-compiler, targeting glibc 2.17
# (manylinux2014). The wheels land in native/dist/; auditwheel checks each one's tag.
#   native/build-wheels.sh [x86_64] [aarch64]        (default: both)
# Reproducible: the same source gives byte-identical wheels (SOURCE_DATE_EPOCH from git).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(x86_64 aarch64)

# Build tools in their own environment, pinned by version and file hash in build-tools.txt
# (nothing of this reaches a user); installed again when that file changes.
tools="${BLUEZONE_NATIVE_TOOLS:-$here/.build-venv}"
stamp="$tools/.pins-$(sha256sum <build-tools.txt | cut -c1-12)"
if [ ! -e "$stamp" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q --require-hashes --only-binary=:all: -r build-tools.txt
  touch "$stamp"
fi
py="$tools/bin/python"

# Timestamps in the wheels: the last commit that touched native/ (1980-01-01 outside git).
epoch="$(git log -1 --format=%ct -- . 2>/dev/null || true)"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-${epoch:-315532800}}"
export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-$tools/zig-cache}" ZIG_LOCAL_CACHE_DIR="${ZIG_LOCAL_CACHE_DIR:-$tools/zig-cache}"
lib=src/bluezone_native/_rpi.so
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)"
mkdir -p dist
for arch in "${archs[@]}"; do
  case "$arch" in x86_64|aarch64) ;; *) echo "unknown architecture: $arch (x86_64 or aarch64)" >&2; exit 2;; esac
  # -s and no build id: the library depends only on the source and the compiler.
  "$py" -m ziglang cc -target "$arch-linux-gnu.2.17" -O2 -fPIC -shared -fvisibility=hidden \
    -Wall -Wextra -Werror -s -Wl,--build-id=none -o "$lib" src/bluezone_native/rpi.c
  rm -rf build
  "$py" -m pip wheel -q --no-deps --no-build-isolation -w dist .
  rm -rf build src/*.egg-info "$lib"
  wheel="dist/bluezone_native-$version-py3-none-manylinux_2_17_$arch.manylinux2014_$arch.whl"
  # auditwheel names the oldest manylinux the library fits; it must be 2.17 or older.
  report="$("$py" -m auditwheel show "$wheel")"
  glibc_minor="$(grep -o 'manylinux_2_[0-9]*' <<<"$report" | head -1 | cut -d_ -f3)"
  if [ -z "$glibc_minor" ] || [ "$glibc_minor" -gt 17 ]; then
    echo "$wheel does not fit manylinux_2_17:" >&2; echo "$report" >&2; exit 1
  fi
  sha256sum "$wheel"
done
