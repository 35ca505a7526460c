#!/usr/bin/env bash
# `feosctl vm create --dry-run` end to end: the real feosd on a simulated HGX H100 host
# (feos-fake-sysfs: 8 x H100 with 128 GiB BAR1, each in its own IOMMU group, and 4 NVSwitches in
# group 114) and the real feosctl. The plan names the 8 cards and their groups and, since the VM
# takes the whole board (no nvswitch_mode: full-board VMs only), the 4 NVSwitches on the first
# card; its argv passes 12 vfio-pci functions, the
# 64-bit hole and phys-bits are mmio_layout.h's, the host tree and the daemon's state are
# unchanged afterwards, and a refusal is the real create's, code and message.
# Usage: dry_run_test.sh BIN_DIR
BIN=$(cd "$1" && pwd)
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT

"$BIN/feos-fake-sysfs" --host hgx-h100 "$WORK/host" >/dev/null
echo "a kernel" >"$WORK/vmlinuz"
start_daemon --sysfs-root "$WORK/host/sys" --dev-root "$WORK/host/dev" --proc-root "$WORK/host/proc"

tree_state() {  # every file of the host tree with its content and every link with its target
  (cd "$WORK/host" && find . -type l -printf '%p -> %l\n' && find . -type f -exec md5sum {} +) | sort | md5sum
  ls -A "$STATE/vms"
  ctl vm list -o json
}
before=$(tree_state)

GPUS=(0000:18:00.0 0000:2a:00.0 0000:3a:00.0 0000:5d:00.0 0000:9a:00.0 0000:ab:00.0 0000:ba:00.0 0000:db:00.0)
args=(vm create --id 00000000-0000-4000-8000-000000000008 --vcpus 8 --memory 65536 --kernel "$WORK/vmlinuz")
for g in "${GPUS[@]}"; do args+=(--gpu "$g"); done

ctl "${args[@]}" --dry-run -o json >"$WORK/plan.json" || fail "dry run of 8 GPUs failed: $(cat "$WORK/plan.json")"
# 8 x (BAR1 128 GiB + BAR3 32 MiB) -> 8 windows of 256 GiB + 128 GiB alignment slack = 2176 GiB.
# 64 GiB of RAM: 62 GiB above 4 GiB; a hole after it would pass 1012 GiB, so qemu moves that RAM
# to 1 TiB: the hole starts at 1086 GiB and ends at 3262 GiB < 4 TiB -> 42 bits (tcg).
# Below 4 GiB: 8 x BAR0 16 MiB and 4 x the NVSwitches' 32 MiB BAR0 (64-bit, not prefetchable).
if python3 - "$WORK/plan.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["plan"]
GiB = 1 << 30
want_groups = ["59", "50", "41", "15", "107", "98", "89", "79"]
gpus = p["gpus"]
assert r["vm_id"] == "00000000-0000-4000-8000-000000000008" and p["vm_id"] == "00000000-0000-4000-8000-000000000008", r["vm_id"]
assert [g["functions"][0]["iommu_group"] for g in gpus] == want_groups, gpus
assert [g.get("numa_node", 0) for g in gpus] == [0] * 4 + [1] * 4, [g.get("numa_node") for g in gpus]
assert all(g["functions"][0]["original_driver"] == "nvidia" for g in gpus)
a = p["address_space"]
assert int(a["ram_bytes"]) == 64 * GiB, a
assert [f["address"] for f in gpus[0]["fabric"]] == ["0000:0%d:00.0" % i for i in range(5, 9)], gpus[0]
assert all(f["iommu_group"] == "114" for f in gpus[0]["fabric"]) and not any(g.get("fabric") for g in gpus[1:])
assert int(a["mmio32_bytes"]) == (8 * 16 + 4 * 32) * (1 << 20), a
assert int(a["hole64_size"]) == 2176 * GiB, a
assert int(a["hole64_start"]) == 1086 * GiB, a
assert a["phys_bits"] == 42, a
argv = p["qemu_argv"]
vfio = [v for f, v in zip(argv, argv[1:]) if f == "-device" and v.startswith("vfio-pci,host=")]
assert len(vfio) == 12, vfio
assert ["-global", "q35-pcihost.pci-hole64-size=%d" % (2176 * GiB)] == argv[argv.index("-global"):argv.index("-global") + 2]
assert argv[argv.index("-cpu") + 1] == "max,phys-bits=42", argv
assert any("is allowed by the GPU policy" in d for d in p["decisions"]), p["decisions"]
PY
then pass "plan of 8 GPUs: groups, the NVSwitches, 12 vfio-pci functions, hole and phys-bits as mmio_layout says"
else fail "the plan of 8 GPUs is not as expected"; fi

table=$(ctl "${args[@]}" --dry-run)
if grep -q "^  64-bit hole:  2176 GiB at 1086 GiB (0x10f80000000)$" <<<"$table" &&
   grep -q "^  phys-bits:    42$" <<<"$table" &&
   [ "$(grep -c "vfio-pci,host=" <<<"$table")" = 12 ] && [ "$(grep -c "^    nvswitch " <<<"$table")" = 4 ]; then
  pass "table: address space, 4 NVSwitches and 12 vfio-pci arguments"
else fail "table: $table"; fi

[ "$(tree_state)" = "$before" ] && pass "dry runs changed nothing" || fail "a dry run changed the host or the daemon's state"

# A refusal is the real create's: the NIC 19:00.0 is not a GPU; 2 of the board's 8 GPUs would
# lack their NVSwitch fabric.
dry=$(ctl vm create --id 00000000-0000-4000-8000-00000000000a --kernel "$WORK/vmlinuz" --gpu 0000:19:00.0 --dry-run 2>&1) && fail "dry run of a NIC passed"
real=$(ctl vm create --id 00000000-0000-4000-8000-00000000000a --kernel "$WORK/vmlinuz" --gpu 0000:19:00.0 2>&1) && fail "create of a NIC passed"
if [ "$dry" = "$real" ] && grep -q "error: FAILED_PRECONDITION: .*not a GPU" <<<"$dry"; then
  pass "a refused dry run prints the real create's error ($dry)"
else fail "dry run: '$dry', create: '$real'"; fi
dry=$(ctl vm create --id 00000000-0000-4000-8000-00000000000a --kernel "$WORK/vmlinuz" --gpu 0000:18:00.0 --gpu 0000:2a:00.0 --dry-run 2>&1) && fail "dry run of 2 of 8 board GPUs passed"
real=$(ctl vm create --id 00000000-0000-4000-8000-00000000000a --kernel "$WORK/vmlinuz" --gpu 0000:18:00.0 --gpu 0000:2a:00.0 2>&1) && fail "create of 2 of 8 board GPUs passed"
if [ "$dry" = "$real" ] && grep -q "error: FAILED_PRECONDITION: .*joined by 4 NVSwitches.*error 802" <<<"$dry"; then
  pass "a partial board is refused the same way by the dry run and the create"
else fail "dry run: '$dry', create: '$real'"; fi
[ "$(tree_state)" = "$before" ] && pass "refusals changed nothing" || fail "a refusal changed the host"

[ "$FAILS" -eq 0 ] && log "all passed" || { log "$FAILS failed"; exit 1; }
