#!/usr/bin/env bash
# Benchmark: `feosctl vm create --dry-run` for 8 GPUs on a simulated 1,000-device host, end to end
# through the real feosctl and feosd (process start, connect, validation, the host side's plan over
# the whole PCI tree, the hypervisor's plan, JSON), and as one RPC of a client with an open
# channel. Target: median well under 50 ms. Prints the median and p95 of R runs (after a warm-up).
# Usage: dry_run_bench.sh BIN_DIR [DEVICES=1000] [RUNS=25]
set -euo pipefail
BIN=$(cd "$1" && pwd); N=${2:-1000}; R=${3:-25}
base=/dev/shm; [ -w $base ] || base=${TMPDIR:-/tmp}
WORK=$(mktemp -d $base/feosd-dry-run.XXXXXX)
DAEMON=
cleanup() { [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/feos-fake-sysfs" --host "large:$N" "$WORK/host" >/dev/null
echo "a kernel" >"$WORK/vmlinuz"
"$BIN/feosd" --socket "$WORK/feosd.sock" --state-dir "$WORK/state" --accel tcg --log-level info \
  --sysfs-root "$WORK/host/sys" --dev-root "$WORK/host/dev" --proc-root "$WORK/host/proc" 2>"$WORK/feosd.log" &
DAEMON=$!
for _ in $(seq 100); do [ -S "$WORK/feosd.sock" ] && break; sleep 0.05; done
ctl() { "$BIN/feosctl" --socket "$WORK/feosd.sock" "$@"; }

# The first 8 H100-class GPUs the inventory offers (the host's BMC VGA is the boot VGA).
mapfile -t gpus < <(ctl gpu list -o json | python3 -c '
import json, sys
devices = json.load(sys.stdin).get("devices", [])
print("\n".join([d["address"] for d in devices if d.get("vendor_id") == "10de" and d.get("status") == "DEVICE_STATUS_AVAILABLE"][:8]))')
[ "${#gpus[@]}" -eq 8 ] || { echo "the $N-device host offers ${#gpus[@]} GPUs, not 8"; exit 1; }
args=(vm create --dry-run --id 00000000-0000-4000-8000-0000000000be --vcpus 16 --memory 65536 --kernel "$WORK/vmlinuz" -o json)
for g in "${gpus[@]}"; do args+=(--gpu "$g"); done

ctl "${args[@]}" >"$WORK/plan.json"
vfio=$(grep -c '"vfio-pci,host=' "$WORK/plan.json" || true)
[ "$vfio" -eq 8 ] || { echo "the plan passes $vfio vfio-pci functions, not 8"; cat "$WORK/plan.json"; exit 1; }
# Runs alternate with `feosctl vm list` (an empty list: process start, connect, one call), the
# floor any feosctl command pays on this machine, so a loaded CI machine shows in both figures.
for _ in $(seq "$R"); do
  s=$(date +%s%N); ctl "${args[@]}" >/dev/null; e=$(date +%s%N)
  echo $(( (e - s) / 1000 )) >>"$WORK/dry"
  s=$(date +%s%N); ctl vm list -o json >/dev/null; e=$(date +%s%N)
  echo $(( (e - s) / 1000 )) >>"$WORK/list"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] / 1000}'; }
p95() { sort -n "$1" | awk '{a[NR]=$1} END {i=int(NR*0.95+0.999); if (i>NR) i=NR; printf "%.1f", a[i] / 1000}'; }
# The same dry run as one RPC on an open channel (a Python client generated from the project's
# .proto, as tests/process/python_client_test.py does): the API's end to end without the process
# start every feosctl command pays (its dynamic loading of gRPC's ~55 libraries).
PROTO=$(cd "$(dirname "$0")/../proto" && pwd)
mkdir "$WORK/gen"
protoc -I "$PROTO" --python_out "$WORK/gen" --grpc_out "$WORK/gen" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  "$PROTO"/feos/vm/vmm/api/v1/vm.proto "$PROTO"/feosd/v1/*.proto  # all: vm.proto imports most
/usr/bin/python3 - "$WORK" "$R" "${gpus[@]}" >"$WORK/rpc" <<'PY'
import sys, time
work, runs, gpus = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sys.path.insert(0, work + "/gen")
import grpc
from feos.vm.vmm.api.v1 import vm_pb2 as pb, vm_pb2_grpc as rpc
stub = rpc.VMServiceStub(grpc.insecure_channel("unix://" + work + "/feosd.sock"))
req = pb.CreateVmRequest(vm_id="00000000-0000-4000-8000-0000000000bf", dry_run=True)
req.config.cpus.boot_vcpus = 16
req.config.memory.size_mib = 65536
req.config.boot.kernel = work + "/vmlinuz"
for g in gpus:
    req.config.gpus.add().address = g
stub.CreateVm(req)  # warm-up: connect
for _ in range(runs):
    s = time.monotonic_ns()
    resp = stub.CreateVm(req)
    print((time.monotonic_ns() - s) // 1000)
    assert sum(a.startswith("vfio-pci,host=") for a in resp.plan.qemu_argv) == 8, resp.plan.qemu_argv
PY
median=$(median "$WORK/dry"); p95=$(p95 "$WORK/dry")
[ -z "$(ls -A "$WORK/state/vms")" ] || { echo "a dry run left a runtime directory"; exit 1; }
echo "dry run of 8 GPUs on a $N-device host (feosctl vm create --dry-run -o json, end to end), $R runs:"
echo "  median $median ms, p95 $p95 ms"
echo "  baseline feosctl vm list -o json: median $(median "$WORK/list") ms, p95 $(p95 "$WORK/list") ms"
echo "  one CreateVm(dry_run) RPC on an open channel: median $(median "$WORK/rpc") ms, p95 $(p95 "$WORK/rpc") ms"
# feosd's own share: VmManager::plan_create logs "planned vm=<id> gpus=8 us=<microseconds>".
grep -o 'planned vm=00000000-0000-4000-8000-0000000000be gpus=8 us=[0-9]*' "$WORK/feosd.log" |
  sed 's/.*us=//' | tail -n "$R" >"$WORK/daemon"
[ "$(wc -l <"$WORK/daemon")" -eq "$R" ] || { echo "feosd logged $(wc -l <"$WORK/daemon") plans, not $R"; exit 1; }
echo "  inside feosd (plan_create): median $(median "$WORK/daemon") ms, p95 $(p95 "$WORK/daemon") ms"
rpc=$(median "$WORK/rpc")
awk -v m="$median" -v r="$rpc" 'BEGIN {
  printf "  target: median < 50 ms: through feosctl %s, through the API %s\n", (m < 50 ? "MET" : "MISSED"), (r < 50 ? "MET" : "MISSED") }'
