#!/bin/sh
# One firmware case of CTest: the real feosd on a simulated host (feos-fake-sysfs) plans a VM with
# GPUs through `feosctl vm create --dry-run -o json` (exactly what a create and start would run),
# and bar_proof.py proves the plan with the firmware the argv names.
# Exit: bar_proof.py's (0 as expected, 1 not, 2 bad plan, 77 skipped).
#   run_case.sh BIN_DIR KERNEL HOST GPUS FIRMWARE [bar_proof.py options...]
#   GPUS: all, or how many of the host's GPUs (in `feosctl gpu list` order), or board: all of
#   an HGX board's GPUs in full-passthrough mode, so the plan also passes every NVSwitch;
#   FIRMWARE: bios|uefi
set -eu
if [ $# -lt 5 ]; then echo "usage: $0 BIN_DIR KERNEL HOST GPUS FIRMWARE [bar_proof.py options...]" >&2; exit 2; fi
bin=$1 kernel=$2 host=$3 gpus=$4 firmware=$5
shift 5
dir=$(mktemp -d /tmp/feos-fw-plan-XXXXXX)
daemon=
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
"$bin/feos-fake-sysfs" --host "$host" "$dir/host" >/dev/null
start_feosd() {  # [feosd options...]
  "$bin/feosd" --socket "$dir/feosd.sock" --state-dir "$dir/state" --accel tcg --log-level warn \
    --sysfs-root "$dir/host/sys" --dev-root "$dir/host/dev" --proc-root "$dir/host/proc" "$@" 2>"$dir/feosd.log" &
  daemon=$!
  i=0
  until "$bin/feosctl" --socket "$dir/feosd.sock" vm list >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 200 ] || { echo "feosd did not come up:"; cat "$dir/feosd.log"; exit 2; }
    sleep 0.05
  done
}
start_feosd
# The GPUs the host offers (STATUS available: not the boot VGA, not held), in address order.
addresses=$("$bin/feosctl" --socket "$dir/feosd.sock" gpu list | awk 'NR > 1 && / available / {print $1}')
case $gpus in all|board) ;; *) addresses=$(echo "$addresses" | head -n "$gpus") ;; esac
# On an HGX board (hgx-h100, hgx-h200) a VM takes all GPUs and the NVSwitches with them, or one
# partition of a fabric manager on the host (hostdev policy nvswitch_mode). `board` proves the
# first (full-passthrough: the NVSwitches' BARs join the GPUs'); otherwise the feosd that plans
# declares the GPUs asked for as the one partition of shared NVSwitches, so the plan holds
# exactly them (1 or all 8). Hosts without NVSwitches ignore the policy.
if [ "$gpus" = board ]; then
  echo '{"nvswitch_mode": "full-passthrough"}' >"$dir/policy.json"
else
  partition=""
  for a in $addresses; do partition="$partition${partition:+, }\"$a\""; done
  printf '{"nvswitch_mode": "shared", "nvswitch_partitions": [[%s]]}\n' "$partition" >"$dir/policy.json"
fi
kill "$daemon"; wait "$daemon" 2>/dev/null || true
start_feosd --device-policy "$dir/policy.json"
args=""
for a in $addresses; do args="$args --gpu $a"; done
# shellcheck disable=SC2086  # one word per argument
"$bin/feosctl" --socket "$dir/feosd.sock" vm create --kernel "$kernel" --memory 512 --firmware "$firmware" \
  $args --dry-run -o json >"$dir/plan.json" || { echo "dry run failed:"; cat "$dir/plan.json"; exit 2; }
python3 "$(dirname "$0")/bar_proof.py" "$dir/plan.json" --kernel "$kernel" "$@"
