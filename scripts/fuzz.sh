#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) in build-fuzz with clang, ASan and UBSan, and runs each for
# a bounded time (one per CPU at once) on a scratch copy of its checked-in corpus (CTest label
# "fuzz"), then prints one summary line per target. Exits non-zero if a fuzzer found a crash, leak or hang (the input is
# under build-fuzz/fuzz/work/<name>/artifacts/).
#   scripts/fuzz.sh                     FEOS_FUZZ_SECONDS (default 20) per target
#   FEOS_FUZZ_SECONDS=300 scripts/fuzz.sh -R qmp    longer, one target (extra args go to ctest)
# Needs clang and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes) besides the build's
# usual packages.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FEOS_FUZZ_SECONDS:-20}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DFEOS_FUZZ=ON -DFEOS_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build build-fuzz
cd build-fuzz
rm -f fuzz/work/*/summary.txt
status=0
ctest -L fuzz -j "$(nproc)" --output-on-failure "$@" || status=$?
cat fuzz/work/*/summary.txt 2>/dev/null || true
exit "$status"
