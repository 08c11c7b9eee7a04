#!/usr/bin/env bash
# Builds outrigger. Usage: scripts/build.sh [release|asan]   (default release → build/outrigger;
# asan → build-asan/outrigger with AddressSanitizer and UBSan, plus the unit tests).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) dir=build; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) dir=build-asan; args=(-DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined) ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${args[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
echo "built $dir/outrigger"
