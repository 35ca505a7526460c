#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time, as the CTest test fuzz_<name> does:
#   run-fuzzer.sh <test name> <fuzzer binary> <checked-in corpus dir> <work dir> <seconds> [flags...]
# The checked-in corpus is only read; inputs the run discovers go to <work dir>/corpus, crash
# inputs to <work dir>/artifacts, the whole log to <work dir>/fuzz.log. Ends with one line (also
# written to <work dir>/summary.txt)
#   fuzz_<name>: N executions in S s (R/s), corpus C files (+A new), 0 crashes
# and exits with libFuzzer's status: non-zero on a crash, leak, timeout or out-of-memory.
set -uo pipefail
if [ $# -lt 5 ]; then
  echo "usage: $0 <test name> <fuzzer> <corpus dir> <work dir> <seconds> [libFuzzer flags...]" >&2
  exit 2
fi
name=$1 fuzzer=$2 corpus=$3 work=$4 seconds=$5
shift 5
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
log="$work/fuzz.log"
seeds=$(find "$corpus" -type f | wc -l)

# -timeout: one input running longer than 10 s is a hang; -rss_limit_mb: libFuzzer's default.
start=$SECONDS
"$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$corpus" >"$log" 2>&1
status=$?
elapsed=$((SECONDS - start))

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
runs=$(stat number_of_executed_units)
rate=$(stat average_exec_per_sec)
new=$(find "$work/corpus" -type f | wc -l)
crashes=$(find "$work/artifacts" -type f | wc -l)

if [ "$status" -ne 0 ]; then
  # The report (stack, failed invariant, the input's path) is at the end of the log.
  tail -n 80 "$log"
  echo "artifacts: $(find "$work/artifacts" -type f | tr '\n' ' ')"
  [ "$crashes" -eq 0 ] && crashes=1
else
  grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+(INITED|DONE))' "$log" | tail -n 3
fi
echo "$name: ${runs:-0} executions in $elapsed s (${rate:-0}/s), corpus $seeds files (+$new new), $crashes crashes" |
  tee "$work/summary.txt"
exit "$status"
