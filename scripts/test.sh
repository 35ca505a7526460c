#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds, runs every test
# (unit, layer, hardening, process-level with real qemu, the emulated GPU host end to end) and the
# benchmarks' printed figures, then builds the libFuzzer targets with clang and runs each for a
# bounded time (scripts/fuzz.sh). Exits non-zero if either part failed; both always run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
status=0
(cd build && ctest --output-on-failure --timeout 900 "$@") || status=$?
scripts/fuzz.sh || status=$?
exit "$status"
