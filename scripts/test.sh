#!/usr/bin/env bash
# Sets everything up and runs every test: source checks, C unit tests and fuzz-corpus replays under
# AddressSanitizer + UBSan (ctest), then the end-to-end suite (Node's test runner) against the
# ASan/UBSan build of the sidecar with real MCP and Dapr peers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/install-deps.sh
scripts/build.sh release
scripts/build.sh asan

echo "== source checks"
scripts/checksrc
scripts/format-check

echo "== unit tests and fuzz corpora (ASan + UBSan)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd build-asan && ctest --output-on-failure --timeout 120)

echo "== end-to-end tests (ASan + UBSan sidecar)"
export OUTRIGGER_BIN=$root/build-asan/outrigger
cd tests/e2e
node --test --test-concurrency=1 .
