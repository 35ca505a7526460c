#!/bin/sh
# One firmware case of CTest: the plan of a VM with GPUs on a simulated host (feos-firmware-plan),
# proven by bar_proof.py. Exit: bar_proof.py's (0 as expected, 1 not, 2 bad plan, 77 skipped).
#   run_case.sh GENERATOR KERNEL HOST GPUS [bar_proof.py options...]
set -eu
if [ $# -lt 4 ]; then echo "usage: $0 GENERATOR KERNEL HOST GPUS [bar_proof.py options...]" >&2; exit 2; fi
generator=$1 kernel=$2 host=$3 gpus=$4
shift 4
dir=$(mktemp -d /tmp/feos-fw-plan-XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$generator" --host "$host" --gpus "$gpus" > "$dir/plan.json"
rc=0
python3 "$(dirname "$0")/bar_proof.py" "$dir/plan.json" --kernel "$kernel" "$@" || rc=$?
exit $rc
