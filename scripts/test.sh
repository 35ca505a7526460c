#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds, runs every test
# (unit, layer, process-level with real qemu) and the benchmarks' printed figures.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
