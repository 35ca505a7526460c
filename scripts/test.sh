#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds, runs every test
# (unit, layer, hardening, process-level with real qemu, the emulated GPU host end to end) and the
# benchmarks, prints the benchmarks' and the load test's figures after CTest's summary, then builds
# the libFuzzer targets with clang and runs each for a bounded time (scripts/fuzz.sh). Exits
# non-zero if either part failed; both always run. Extra arguments go to CTest (e.g. -L bench);
# without any, tests labelled opt-in are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
scripts/install-deps.sh
scripts/build.sh
status=0
rm -rf build/figures
# Without arguments every test runs but those labelled opt-in (the end-to-end start benchmark:
# 15 minutes more): first those that may share the CPUs, one per CPU at once, then the timed and
# heavy ones (benchmarks, the load test, the emulated GPU host) one after the other, alone. Name
# tests to run only them (-L bench, -L opt-in, -R NAME).
if [ $# -eq 0 ]; then
  (cd build && ctest --output-on-failure --timeout 900 -j "$(nproc)" -LE "opt-in|bench|load|e2e") || status=$?
  (cd build && ctest --output-on-failure --timeout 900 -L "bench|load|e2e" -LE opt-in) || status=$?
else
  (cd build && ctest --output-on-failure --timeout 900 "$@") || status=$?
fi
if compgen -G 'build/figures/*.txt' >/dev/null; then
  echo
  echo "== Figures printed by the benchmarks and the load test in this run"
  for f in build/figures/*.txt; do
    echo
    echo "-- $(basename "$f" .txt)"
    cat "$f"
  done
fi
scripts/fuzz.sh || status=$?
echo
echo "test.sh: finished in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s, exit status $status"
exit "$status"
