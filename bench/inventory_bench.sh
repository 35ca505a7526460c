#!/usr/bin/env bash
# Benchmark: the GPU inventory of a simulated 1,000-device host, end to end through the real
# daemon and CLI (`feosctl gpu list -o json`), against `lspci -nnk` reading the same sysfs tree.
# Target: feosctl's time <= lspci's. Prints medians of R runs each.
# Usage: inventory_bench.sh BIN_DIR [DEVICES=1000] [RUNS=15]
set -euo pipefail
BIN=$(cd "$1" && pwd); N=${2:-1000}; R=${3:-15}
command -v lspci >/dev/null || { echo "lspci not installed (pciutils)"; exit 1; }
base=/dev/shm; [ -w $base ] || base=${TMPDIR:-/tmp}
WORK=$(mktemp -d $base/feosd-inventory.XXXXXX)
DAEMON=
cleanup() { [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

t0=$(date +%s.%N)
"$BIN/feos-fake-sysfs" --host "large:$N" "$WORK/host" >/dev/null
echo "built a $N-device host tree in $(echo "$(date +%s.%N) - $t0" | bc) s"
"$BIN/feosd" --socket "$WORK/feosd.sock" --state-dir "$WORK/state" --accel tcg --log-level warn \
  --sysfs-root "$WORK/host/sys" --dev-root "$WORK/host/dev" --proc-root "$WORK/host/proc" 2>"$WORK/feosd.log" &
DAEMON=$!
for _ in $(seq 100); do [ -S "$WORK/feosd.sock" ] && break; sleep 0.05; done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_runs() {  # command...: prints the median wall time in ms over R runs (after one warm-up)
  "$@" >/dev/null
  for _ in $(seq "$R"); do
    s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
  done | median | awk '{printf "%.1f", $1 / 1000}'
}
# lspci -k looks up kernel modules with libkmod and complains once per device when the running
# kernel has no /lib/modules tree (containers, some VMs); the complaint is not part of the figure.
lspci_tree() { lspci -A linux-sysfs -O "sysfs.path=$WORK/host/sys/bus/pci" -nnk 2>/dev/null; }
# Devices, not the addresses inside them (a GPU's switch peers have addresses too).
count() { python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("devices", [])))'; }
gpus=$("$BIN/feosctl" --socket "$WORK/feosd.sock" gpu list -o json | count)
all=$("$BIN/feosctl" --socket "$WORK/feosd.sock" gpu list --all -o json | count)
lspci_lines=$(lspci_tree | grep -c '^[0-9a-f]' || true)
f=$(time_runs "$BIN/feosctl" --socket "$WORK/feosd.sock" gpu list -o json)
fa=$(time_runs "$BIN/feosctl" --socket "$WORK/feosd.sock" gpu list --all -o json)
l=$(time_runs lspci_tree)
echo "inventory of $N devices ($gpus GPUs), median of $R runs:"
echo "  feosctl gpu list -o json        : $f ms ($gpus GPUs)"
echo "  feosctl gpu list --all -o json  : $fa ms ($all devices)"
echo "  lspci -nnk on the same tree     : $l ms ($lspci_lines devices)"
awk -v f="$f" -v l="$l" 'BEGIN { printf "  ratio feosctl/lspci %.2f; target <= 1.0: %s\n", f / l, (f <= l ? "MET" : "MISSED") }'
