#!/usr/bin/env bash
# Configures and builds into build/ (Ninja, warnings as errors). Binaries: build/bin/feosd, feosctl.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DFEOS_WERROR=ON >/dev/null
cmake --build build -j "$(nproc)"
