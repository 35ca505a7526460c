#!/usr/bin/env bash
# Runs one benchmark (or other test whose printed figures belong in every CI log) and keeps a copy
# of what it printed in OUTFILE; scripts/test.sh prints those files after CTest's summary, because
# CTest shows a passing test's output only when run verbosely. Exits with the command's status.
# Usage: record.sh OUTFILE COMMAND [ARGS...]
set -uo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 OUTFILE COMMAND [ARGS...]" >&2; exit 2; fi
out=$1; shift
mkdir -p "$(dirname "$out")"
"$@" 2>&1 | tee "$out.tmp"
status=${PIPESTATUS[0]}
{ echo "exit status $status"; } >>"$out.tmp"
mv "$out.tmp" "$out"
exit "$status"
