#!/bin/bash
# The end-to-end suite, run inside L1 (the emulated GPU host, see run-l1.sh) by init.sh: bash
# from L0's root, real /sys and /dev of L1's kernel, the project's feosd and feosctl.
# Environment (from init.sh): E2E_SRC, E2E_BIN (feosd, feosctl), E2E_OUT (setup.sh's output),
# E2E_RESULTS (writable, shared with L0), E2E_CASES (comma-separated case names; empty: all).
# Each case prints `CASE <name> PASS|FAIL|SKIP (<seconds> s)` with its evidence lines; the suite
# ends with `SUMMARY passed=N failed=M skipped=K`, also written to RESULTS/summary.txt.
# Order matters for time only: gpu_two leaves its VM running (SHARED_VM) for isolation,
# refusals, crash_while_running and release; each of those starts one itself when run alone.
# A case whose feature the daemon answers UNIMPLEMENTED for is SKIP, not FAIL.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$E2E_OUT/env"
# shellcheck source=tests/e2e/l1-lib.sh
. "$HERE/l1-lib.sh"
# shellcheck source=tests/e2e/l1-bench.sh
. "$HERE/l1-bench.sh"
: > "$E2E_RESULTS/summary.txt"
SUITE_T0=$(now)

# ---------- the host's devices (run-l1.sh builds this layout) ----------
BOOT_VGA=0000:00:01.0   # the host's own display: boot VGA, never asked for
CARD_A=0000:01:00.0     # VGA, function 0 of card A
CARD_A_AUDIO=0000:01:00.1
CARD_B=0000:02:00.0     # bochs-display, own group
NIC=0000:03:00.0        # e1000e, own group
BRIDGE=0000:00:05.0     # conventional PCI bridge
BR_GPU=0000:04:01.0     # bochs-display behind the bridge
BR_NIC=0000:04:02.0     # e1000e behind the bridge: same group as BR_GPU
CARD_C=0000:05:00.0     # virtio-gpu-pci, function 0 of card C  } one group, own root port
CARD_C_BAR=0000:05:00.1 # pci-testdev: a 64-bit prefetchable BAR of E2E_BIG_BAR_GIB (16 GiB)
CARD_E=0000:43:00.0     # bochs-display under the PCIe switch, NUMA node 0  } the switch pair
CARD_F=0000:44:00.0     # bochs-display under the same switch, node 0       }
SW_NIC=0000:45:00.0     # e1000e under the same switch
SW_UP=0000:41:00.0      # the switch's upstream port
CARD_D=0000:81:00.0     # bochs-display on node 1 (root bus pci0000:80)
# The host drivers every device must be on whenever no VM holds it (none: no driver binds it).
declare -A HOST_DRIVER=(
  [$BOOT_VGA]=bochs-drm [$CARD_A]=bochs-drm [$CARD_A_AUDIO]=snd_hda_intel [$CARD_B]=bochs-drm
  [$NIC]=e1000e [$BR_GPU]=bochs-drm [$BR_NIC]=e1000e [$CARD_C]=virtio-pci [$CARD_C_BAR]=none
  [$CARD_E]=bochs-drm [$CARD_F]=bochs-drm [$SW_NIC]=e1000e [$CARD_D]=bochs-drm)
ALL_DEVS="$BOOT_VGA $CARD_A $CARD_A_AUDIO $CARD_B $NIC $BR_GPU $BR_NIC $CARD_C $CARD_C_BAR"
ALL_DEVS="$ALL_DEVS $CARD_E $CARD_F $SW_NIC $CARD_D"
# Option ROMs cost boot time under nested emulation (SeaBIOS runs the VGA BIOS): gpu_one keeps
# the default (ROM on, the realistic path); the other cases turn it off.
NOROM=,rombar=off
# gRPC codes of the refusals (feosctl prints `feosctl: error: <CODE>: <message>`).
CODE_NOT_VIABLE=FAILED_PRECONDITION
CODE_IN_USE=FAILED_PRECONDITION
CODE_NO_DEVICE=NOT_FOUND
CODE_NOT_GPU=FAILED_PRECONDITION
CODE_MALFORMED=INVALID_ARGUMENT

# host_drivers_intact [DEVICES]: every listed device (default all) is on its host driver.
host_drivers_intact() {
  local d okay=0
  for d in ${1:-$ALL_DEVS}; do
    [ "$(drv "$d")" = "${HOST_DRIVER[$d]}" ] || { ev "$d is on $(drv "$d"), expected ${HOST_DRIVER[$d]}"; okay=1; }
  done
  return $okay
}
# driver_snapshot: every device with its driver and driver_override.
driver_snapshot() { local d; for d in $ALL_DEVS; do echo -n "$d=$(drv "$d"),$(override "$d") "; done; }
# wait_host_drivers SECONDS [DEVICES]: until every listed device is back on its host driver.
wait_host_drivers() {
  local i=0 n=$(($1 * 10))
  while ! host_drivers_intact "${2:-}" >/dev/null && [ $i -lt $n ]; do sleep 0.1; i=$((i + 1)); done
  host_drivers_intact "${2:-}"
}
# on_vfio DEVICES...: every device's driver link names vfio-pci.
on_vfio() { local d; for d in "$@"; do [ "$(drv "$d")" = vfio-pci ] || return 1; done; }
# held_by_vm ID DEVICES...: the VM's qemu holds each device's /dev/vfio/<group> open.
held_by_vm() {
  local id=$1 pid d; shift
  pid=$(qemu_of "$id")
  [ -n "$pid" ] || { ev "no qemu process for vm $id"; return 1; }
  for d in "$@"; do
    [[ " $(vfio_holders "$d") " == *" $pid "* ]] || { ev "$d: /dev/vfio/$(grp "$d") not held by qemu $pid (holders: $(vfio_holders "$d"))"; return 1; }
  done
}
# wait_held ID SECONDS DEVICES...: until the VM's qemu holds the devices.
wait_held() {
  local id=$1 n=$(($2 * 5)) i=0; shift 2
  while ! held_by_vm "$id" "$@" >/dev/null 2>&1 && [ $i -lt $n ]; do sleep 0.2; i=$((i + 1)); done
  held_by_vm "$id" "$@"
}
# stranded: devices on vfio-pci that no live process holds: none may exist between cases.
stranded() {
  local d out=""
  for d in $ALL_DEVS; do
    [ "$(drv "$d")" = vfio-pci ] && [ -z "$(vfio_holders "$d")" ] && out="$out $d"
  done
  echo "${out# }"
}
# delete_vm ID: `feosctl vm delete`, then the VM's qemu must be gone.
delete_vm() {
  local pid; pid=$(qemu_of "$1")
  check "vm delete $1" ctl vm delete "$1"
  if [ -n "$pid" ]; then
    local i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    check "qemu $pid of vm $1 exited" eval "! kill -0 $pid 2>/dev/null"
  fi
}
# keep_console ID NAME: copy the VM's whole console log (feosd's runtime dir) into RESULTS.
keep_console() { cp "$STATE/vms/$1/console.log" "$E2E_RESULTS/$2-console-full.log" 2>/dev/null; }
need_gpu_cli() {
  gpu_cli && return 0
  skip "feosctl has no vm create --gpu yet"
  return 1
}
# The GPU VM that cases gpu_two .. release share: running, holding cards A and B.
SHARED_VM=""

# ---------- cases ----------

# 0. The test host is what the other cases assume: groups, drivers, boot VGA, IOMMU, vfio.
case_host_layout() {
  local d g f listed
  for d in $ALL_DEVS $BRIDGE; do ev "$(describe "$d")"; done
  for g in /sys/kernel/iommu_groups/*; do ev "iommu group ${g##*/}: $(ls "$g/devices" | tr '\n' ' ')"; done
  check "card A: VGA 1234:1111 class 0x030000 at $CARD_A" [ "$(ids $CARD_A) $(class_of $CARD_A)" = "1234:1111 0x030000" ]
  check "card A: HDA 8086:293e class 0x040300 at $CARD_A_AUDIO" [ "$(ids $CARD_A_AUDIO) $(class_of $CARD_A_AUDIO)" = "8086:293e 0x040300" ]
  check "card B: display 1234:1111 class 0x038000 at $CARD_B" [ "$(ids $CARD_B) $(class_of $CARD_B)" = "1234:1111 0x038000" ]
  check "NIC 8086:10d3 at $NIC" [ "$(ids $NIC)" = "8086:10d3" ]
  check "card C: virtio-gpu 1af4:1050 class 0x038000 at $CARD_C" [ "$(ids $CARD_C) $(class_of $CARD_C)" = "1af4:1050 0x038000" ]
  check "card C: pci-testdev 1b36:0005 at $CARD_C_BAR" [ "$(ids $CARD_C_BAR)" = "1b36:0005" ]
  check "card A's two functions form one group: $(group_members $CARD_A)" [ "$(group_members $CARD_A)" = "$CARD_A $CARD_A_AUDIO" ]
  check "card B alone in its group" [ "$(group_members $CARD_B)" = "$CARD_B" ]
  check "NIC alone in its group" [ "$(group_members $NIC)" = "$NIC" ]
  check "card C's two functions form one group: $(group_members $CARD_C)" [ "$(group_members $CARD_C)" = "$CARD_C $CARD_C_BAR" ]
  for d in $CARD_D $CARD_E $CARD_F; do
    check "card at $d: display 1234:1111 class 0x038000, alone in its group but for its port" \
      eval "[ '$(ids $d) $(class_of $d)' = '1234:1111 0x038000' ] && [ \"\$(group_endpoints $d)\" = $d ]"
  done
  check "NIC under the switch 8086:10d3 at $SW_NIC" [ "$(ids $SW_NIC)" = "8086:10d3" ]
  check "behind the pci-bridge one group: $(group_members $BR_GPU)" \
    eval "[[ ' $(group_members $BR_GPU) ' == *' $BR_GPU '* && ' $(group_members $BR_GPU) ' == *' $BR_NIC '* ]]"
  for d in $ALL_DEVS; do check "$d on host driver ${HOST_DRIVER[$d]}" [ "$(drv "$d")" = "${HOST_DRIVER[$d]}" ]; done
  check "boot VGA is $BOOT_VGA, not card A" [ "$(cat "$PCI/$BOOT_VGA/boot_vga")$(cat "$PCI/$CARD_A/boot_vga")" = 10 ]
  check "IOMMU active (dmar0)" [ -e /sys/class/iommu/dmar0 ]
  check "interrupt remapping on" eval "dmesg | grep -c 'Enabled IRQ remapping' >/dev/null"
  check "vfio-pci loaded, /dev/vfio/vfio present" eval "[ -d /sys/bus/pci/drivers/vfio-pci ] && [ -c /dev/vfio/vfio ]"
  # What the daemon lists (evidence; checked against the kernel's view when it answers).
  f=$E2E_RESULTS/gpu-list.json
  if ctl gpu list -o json > "$f" 2>&1; then
    ev "\$ feosctl gpu list"
    ctl gpu list 2>&1 | sed 's/^/    | /'
    listed=$(json "$f" "sorted(d['address'] for d in (j['devices'] if isinstance(j, dict) else j))" | tr '\n' ' ')
    for d in $CARD_A $CARD_B $BR_GPU; do check "gpu list shows $d" eval "[[ ' $listed' == *' $d '* ]]"; done
    check "gpu list does not offer the NIC" eval "[[ ' $listed' != *' $NIC '* ]]"
  else
    ev "gpu list: $(tail -1 "$f")"
  fi
  ev "\$ feosctl host check"
  ctl host check 2>&1 | sed 's/^/    | /'
  return 0
}

# port_type ADDR: the PCIe port type of the function's Express capability (4 root port,
# 5 switch upstream port, 6 switch downstream port; empty for conventional PCI).
port_type() {
  local v; v=$(setpci -s "${1#0000:}" CAP_EXP+2.w 2>/dev/null) || return 0
  [ -n "$v" ] && echo $(( (0x$v >> 4) & 0xf ))
}
# kernel_topology ADDR: "node=N root=pci0000:XX switch=ADDR|- group=G" as the kernel shows it:
# numa_node, the root bus of its sysfs path, the nearest ancestor whose Express capability says
# switch upstream port.
kernel_topology() {
  local path up="-" comp i comps
  path=$(readlink -f "$PCI/$1"); path=${path#/sys/devices/}
  IFS=/ read -ra comps <<<"$path"
  for ((i = ${#comps[@]} - 2; i >= 1; i--)); do
    comp=${comps[$i]}
    [ "$(port_type "$comp")" = 5 ] && { up=$comp; break; }
  done
  echo "node=$(cat "$PCI/$1/numa_node") root=${comps[0]} switch=$up group=$(grp "$1")"
}
# listed_topology FILE ADDR: the same fields from `feosctl gpu list -o json`.
listed_topology() {
  json "$1" "[f\"node={d.get('numa_node', 0)} root={d.get('pcie_root', '')} switch={d.get('switch_upstream') or '-'} group={d.get('iommu_group', '')}\" for d in j['devices'] if d['address'] == '$2']"
}

# 0b. Topology: the daemon's inventory says what the kernel says (NUMA node, root bus, the
#     switch above, IOMMU group) for every GPU; the GPUs under the switch list their peers; a
#     placement by count (dry run) takes the NUMA node and the switch into account.
case_topology() {
  local f=$E2E_RESULTS/gpu-list-topology.json d want got peers plan
  check "kernel: card D on NUMA node 1" [ "$(cat "$PCI/$CARD_D/numa_node")" = 1 ]
  check "kernel: cards E and F on NUMA node 0" [ "$(cat "$PCI/$CARD_E/numa_node")$(cat "$PCI/$CARD_F/numa_node")" = 00 ]
  check "kernel: $SW_UP is a switch upstream port, above E and F" \
    eval "[ '$(port_type $SW_UP)' = 5 ] && [[ '$(readlink -f "$PCI/$CARD_E")' == */$SW_UP/* ]]"
  ctl gpu list -o json > "$f" 2>&1 || { bad "gpu list: $(tail -1 "$f")"; return 1; }
  ev "\$ feosctl gpu list"
  ctl gpu list 2>&1 | sed 's/^/    | /'
  for d in $CARD_A $CARD_B $CARD_C $CARD_D $CARD_E $CARD_F $BR_GPU; do
    want=$(kernel_topology "$d")
    got=$(listed_topology "$f" "$d")
    check "gpu list agrees with the kernel on $d: $want" [ "$got" = "$want" ]
    [ "$got" = "$want" ] || ev "gpu list says: ${got:-nothing}"
  done
  peers=$(json "$f" "sorted(p['address'] for d in j['devices'] if d['address'] == '$CARD_E' for p in d.get('switch_peers', []))" | tr '\n' ' ')
  check "card E's switch peers: card F and the NIC ($peers)" [ "$peers" = "$CARD_F $SW_NIC " ]
  # Placement by count, dry run: one GPU goes to the tightest node (node 1 has one free), a p2p
  # pair to the switch (node 0).
  plan=$E2E_RESULTS/plan-one.json
  ctl vm create --gpus 1 --gpu-model 1234:1111 "${L2_BOOT[@]}" --dry-run -o json > "$plan" 2>&1
  got=$(json "$plan" "[g['request']['address'] for g in j['plan']['gpus']]" 2>/dev/null | tr '\n' ' ')
  check "dry run, 1 GPU of 1234:1111: card D, alone on node 1 ($got)" [ "$got" = "$CARD_D " ]
  json "$plan" "j['plan']['decisions']" 2>/dev/null | sed 's/^/    | decision: /'
  plan=$E2E_RESULTS/plan-pair.json
  ctl vm create --gpus 2 --gpu-p2p --gpu-model 1234:1111 "${L2_BOOT[@]}" --dry-run -o json > "$plan" 2>&1
  got=$(json "$plan" "[g['request']['address'] for g in j['plan']['gpus']]" 2>/dev/null | tr '\n' ' ')
  check "dry run, 2 GPUs with p2p: cards E and F under the switch ($got)" [ "$got" = "$CARD_E $CARD_F " ]
  json "$plan" "j['plan']['decisions']" 2>/dev/null | sed 's/^/    | decision: /'
  check "the dry runs left no VM" [ -z "$(vm_ids)" ]
}

# 1. A VM without GPUs, created and started by feosctl inside the GPU host, boots the L2 Linux
#    guest; its marker arrives on the console stream; console input reaches it; ACPI shutdown;
#    delete.
case_vm_no_gpu() {
  local id t0
  t0=$(now)
  start_vm "${L2_BOOT[@]}" || return 1
  id=$VM_ID
  ev "vm $id created and started in $(since "$t0") s (qemu $(qemu_of "$id"))"
  wait_guest "$id" vm_no_gpu || { keep_console "$id" vm_no_gpu; delete_vm "$id"; return 1; }
  ev "L2 Linux (PVH vmlinux) from vm create to init done: $(since "$t0") s"
  check "guest sees no passed-through GPU" eval "! guest_line vm_no_gpu 'E2E-L2-PCI after .* (1234:1111|8086:293e)' >/dev/null"
  check "console input reaches the guest" \
    eval "ctl vm console $id --send hello-l2 --until E2E-L2-ECHO:hello-l2 --wait 120 >/dev/null"
  check "host devices untouched while it runs" host_drivers_intact
  check "ACPI shutdown" ctl vm shutdown "$id"
  check "vm stopped after ACPI shutdown" eval "ctl vm events $id --until-state stopped --wait 300 >/dev/null"
  check "the guest powered off by itself (not forced off)" \
    eval "ctl vm get $id 2>&1 | grep -q 'guest powered off'"
  keep_console "$id" vm_no_gpu
  delete_vm "$id"
}

# Guest-side checks of card A in transcript NAME: bochs-drm on the VGA function, snd_hda_intel
# on the audio function, in one slot with their function numbers, the codec found over DMA,
# interrupts delivered, the EDID read from the card's BAR.
check_guest_card_a() {
  local name=$1 vga hda
  vga=$(guest_dev "$name" 1234:1111 0x030000 bochs-drm)
  hda=$(guest_dev "$name" 8086:293e 0x040300 snd_hda_intel)
  check "guest: bochs-drm drives card A's VGA function (${vga:-none})" [ -n "$vga" ]
  check "guest: snd_hda_intel drives card A's audio function (${hda:-none})" [ -n "$hda" ]
  check "guest: both functions in one slot, function numbers kept" \
    eval "[ -n '$vga' ] && [ '${vga%.*}.1' = '$hda' ] && [ '${vga##*.}' = 0 ]"
  check "guest: HDA codec probed (CORB/RIRB DMA through both IOMMUs)" eval "guest_line $name '^E2E-L2-CODEC' >/dev/null"
  check "guest: HDA interrupts delivered" eval "guest_line $name '^E2E-L2-IRQ .*count=[1-9].*snd_hda' >/dev/null"
  check "guest: no HDA polling fallback or codec timeout" \
    eval "! guest_line $name 'polling mode|No response from codec|azx_get_response timeout' >/dev/null"
  check "guest: EDID read from the card (MMIO BAR)" eval "guest_line $name '^E2E-L2-EDID after .*bytes=[1-9]' >/dev/null"
}

# GPU case 1: card A by the address of function 0 only. The daemon passes both functions; the
# Linux guest lists both ids in one slot and its drivers bind; delete returns both.
case_gpu_one() {
  need_gpu_cli || return 0
  local id t0
  t0=$(now)
  start_vm --gpu $CARD_A "${L2_BOOT[@]}"
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  id=$VM_ID
  ev "vm $id started in $(since "$t0") s; daemon says assigned: $(vm_functions "$id")"
  check "both functions of card A on vfio-pci" on_vfio $CARD_A $CARD_A_AUDIO
  check "qemu of vm $id holds /dev/vfio/$(grp $CARD_A)" wait_held "$id" 10 $CARD_A $CARD_A_AUDIO
  check "daemon reports both functions assigned" [ "$(vm_functions "$id")" = "$CARD_A $CARD_A_AUDIO" ]
  check "card B, NIC and the bridged devices untouched" host_drivers_intact "$BOOT_VGA $CARD_B $NIC $BR_GPU $BR_NIC"
  if wait_guest "$id" gpu_one; then
    ev "from vm create to guest init done: $(since "$t0") s"
    check_guest_card_a gpu_one
    check "guest: a DRM card" eval "guest_line gpu_one '^E2E-L2-DRM .*card0' >/dev/null"
  fi
  keep_console "$id" gpu_one
  delete_vm "$id"
  check "after delete: card A back on bochs-drm and snd_hda_intel" wait_host_drivers 30 "$CARD_A $CARD_A_AUDIO"
}

# largest_bar ADDR: "START SIZE FLAGS" (hex) of the function's largest memory BAR, as L1's kernel
# has it (/sys/bus/pci/devices/ADDR/resource); nothing when it has none.
largest_bar() {
  local start end flags best=0 line="" i=0
  while [ $i -lt 6 ] && read -r start end flags; do
    i=$((i + 1))
    (( flags & 0x200 )) || continue  # IORESOURCE_MEM
    if (( end - start + 1 > best )); then best=$((end - start + 1)); line=$(printf '%#x %#x %#x' "$start" "$best" "$flags"); fi
  done < "$PCI/$1/resource"
  [ -n "$line" ] && echo "$line"
}
# argv_value PID KEY: the value of KEY=VALUE in the process's command line (the first).
argv_value() { tr '\0' '\n' < "/proc/$1/cmdline" | tr ',' '\n' | sed -n "s/^$2=//p" | head -1; }
# Flag bits of a resource (include/linux/ioport.h).
RES_PREFETCH=0x2000
RES_MEM_64=0x100000
RES_UNSET=0x20000000

# GPU case: card C, a display function and a datacenter-sized BAR (pci-testdev, 64-bit
# prefetchable) in one slot. L1's firmware placed the BAR; feosd gives the guest a 64-bit PCI
# hole and address bits that hold the card's root port window (its qemu's command line); the L2
# guest's SeaBIOS places the BAR at its full size (the guest kernel's resource file) and its
# virtio-pci driver reads the other function's registers through a BAR above 4 GiB; delete
# returns the card (virtio-pci; the test device to no driver, as it came).
case_gpu_big_bar() {
  need_gpu_cli || return 0
  local id t0 pid host_start size flags hole bits line gstart gflags disp test_dev
  read -r host_start size flags <<<"$(largest_bar $CARD_C_BAR)"
  ev "host: $(describe $CARD_C); $(describe $CARD_C_BAR)"
  ev "host: $CARD_C_BAR largest BAR at ${host_start:-?} size ${size:-?} flags ${flags:-?}"
  check "host: L1's SeaBIOS placed a 64-bit prefetchable BAR of ${size:-?} (>= 8 GiB) on $CARD_C_BAR" \
    eval "[ -n '$size' ] && (( $host_start > 0 && $size >= 8 << 30 && ($flags & ($RES_PREFETCH | $RES_MEM_64)) == ($RES_PREFETCH | $RES_MEM_64) && !($flags & $RES_UNSET) ))"
  [ -n "$size" ] || return 1
  t0=$(now)
  start_vm --gpu $CARD_C$NOROM "${L2_BOOT[@]}"
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  id=$VM_ID
  ev "vm $id started in $(since "$t0") s; daemon says assigned: $(vm_functions "$id")"
  check "both functions of card C on vfio-pci" on_vfio $CARD_C $CARD_C_BAR
  check "qemu of vm $id holds /dev/vfio/$(grp $CARD_C)" wait_held "$id" 60 $CARD_C $CARD_C_BAR
  pid=$(qemu_of "$id")
  hole=$(argv_value "$pid" q35-pcihost.pci-hole64-size)
  bits=$(argv_value "$pid" phys-bits)
  ev "qemu $pid: -cpu ...phys-bits=${bits:-none} -global q35-pcihost.pci-hole64-size=${hole:-none}"
  # Without the -global, q35's hole is 32 GiB: enough for windows up to 16 GiB (feosd leaves
  # the default alone when it suffices).
  hole=${hole:-$((32 << 30))}
  # The root port's prefetchable window is a multiple of its largest BAR: twice the BAR here
  # (the virtio function's 16 KiB BAR shares it); the hole starts at 4 GiB (256 MiB of RAM).
  check "feosd gave the guest a 64-bit hole holding the card's window (2 x $size): $hole" \
    eval "(( $hole >= 2 * $size ))"
  check "and address bits reaching the hole's end: phys-bits=${bits:-none}" \
    eval "[ -n '$bits' ] && (( (1 << 32) + $hole <= 1 << $bits ))"
  if wait_guest "$id" gpu_big_bar; then
    ev "from vm create to guest init done: $(since "$t0") s"
    line=$(guest_line gpu_big_bar '^E2E-L2-BAR after .* 1b36:0005 ' | awk -v s="$(printf '0x%x' "$size")" '$7 == "size=" s' | head -1)
    ev "guest: ${line:-no BAR of $size on the test device}"
    gstart=$(sed -n 's/.* start=\([^ ]*\).*/\1/p' <<<"$line")
    gflags=$(sed -n 's/.* flags=\([^ ]*\).*/\1/p' <<<"$line")
    check "guest: the test device's BAR assigned at its full size $size above 4 GiB" \
      eval "[ -n '$gstart' ] && (( $gstart >= 1 << 32 && !($gflags & $RES_UNSET) ))"
    check "guest: the BAR lies within the guest's address bits" \
      eval "[ -n '$gstart' ] && [ -n '$bits' ] && (( $gstart + $size <= 1 << $bits ))"
    disp=$(guest_dev gpu_big_bar 1af4:1050 0x038000 virtio-pci)
    test_dev=$(guest_dev gpu_big_bar 1b36:0005 0x00ff00 -)
    check "guest: virtio-pci drives card C's display function (${disp:-none}; registers in a 64-bit BAR)" \
      [ -n "$disp" ]
    check "guest: the test device (${test_dev:-none}) in that slot, function numbers kept" \
      eval "[ -n '$disp' ] && [ '${disp%.*}.1' = '$test_dev' ] && [ '${disp##*.}' = 0 ]"
    check "guest: no BAR left unassigned" eval "! guest_line gpu_big_bar 'no space for|failed to assign' >/dev/null"
  fi
  keep_console "$id" gpu_big_bar
  delete_vm "$id"
  check "after delete: card C back on virtio-pci, the test device on no driver" \
    wait_host_drivers 30 "$CARD_C $CARD_C_BAR"
  check "after delete: no driver_override left on card C" \
    [ "$(override $CARD_C)$(override $CARD_C_BAR)" = "(null)(null)" ]
  check "after delete: /dev/vfio/$(grp $CARD_C) gone" [ ! -e "/dev/vfio/$(grp $CARD_C)" ]
}

# GPU case: two GPUs by count with p2p: the daemon picks the pair under the PCIe switch (node 0)
# and passes them through the real vfio; their switch ports and the NIC beside them stay on the
# host; the guest drives both; delete returns them.
case_gpu_switch_pair() {
  need_gpu_cli || return 0
  local id t0 got n
  t0=$(now)
  start_vm --gpus 2 --gpu-p2p --gpu-model 1234:1111 "${L2_BOOT[@]}"
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  id=$VM_ID
  got=$(vm_functions "$id")
  ev "vm $id started in $(since "$t0") s; daemon says assigned: $got"
  check "the daemon picked the pair under the switch" [ "$got" = "$CARD_E $CARD_F" ]
  check "cards E and F on vfio-pci" on_vfio $CARD_E $CARD_F
  check "qemu of vm $id holds groups $(grp $CARD_E) and $(grp $CARD_F)" wait_held "$id" 30 $CARD_E $CARD_F
  check "qemu: both root ports on the expander bus of the guest's node (host node 0)" \
    eval "tr '\\0' '\\n' < /proc/$(qemu_of "$id")/cmdline | grep -c '^pcie-root-port,id=feos-gpu[01]-rp,bus=feos-numa0,' | grep -qx 2"
  check "qemu: no GPUDirect clique on the pair (not NVIDIA's: qemu would refuse x-nv-gpudirect-clique)" \
    eval "! tr '\\0' '\\n' < /proc/$(qemu_of "$id")/cmdline | grep -q x-nv-gpudirect-clique"
  check "the switch's ports stay on pcieport" \
    eval "[ \"\$(drv $SW_UP) \$(drv \$(parent_of $CARD_E)) \$(drv \$(parent_of $CARD_F))\" = 'pcieport pcieport pcieport' ]"
  check "the NIC beside them, card D and the other cards untouched" \
    host_drivers_intact "$SW_NIC $CARD_D $CARD_A $CARD_B $CARD_C"
  if wait_guest "$id" gpu_switch_pair; then
    ev "from vm create to guest init done: $(since "$t0") s"
    n=$(guest_dev gpu_switch_pair 1234:1111 0x038000 bochs-drm | wc -l)
    check "guest: bochs-drm drives both cards ($n)" [ "$n" = 2 ]
    check "guest: two DRM cards" eval "guest_line gpu_switch_pair '^E2E-L2-DRM .*card0 .*card1' >/dev/null"
  fi
  keep_console "$id" gpu_switch_pair
  delete_vm "$id"
  check "after delete: cards E and F back on bochs-drm" wait_host_drivers 30 "$CARD_E $CARD_F"
}

# GPU case: card D sits on host NUMA node 1, so the guest mirrors that node (feosd's default on a
# host with two): its RAM bound to host node 1 (qemu's command line, and where the kernel put the
# pages: /proc/<pid>/numa_maps), its vCPU threads allowed only on node 1's CPUs, the card's root
# port on an expander bus of guest node 0, which the guest kernel reports as the card's node.
case_gpu_numa() {
  need_gpu_cli || return 0
  local id t0 pid cmdline ram card
  t0=$(now)
  start_vm --gpu $CARD_D "${L2_BOOT[@]}"
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  id=$VM_ID
  pid=$(qemu_of "$id")
  ev "vm $id started in $(since "$t0") s (qemu $pid); daemon says assigned: $(vm_functions "$id")"
  check "qemu of vm $id holds /dev/vfio/$(grp $CARD_D)" wait_held "$id" 30 $CARD_D
  cmdline=$(tr '\0' '\n' < "/proc/$pid/cmdline")
  ev "qemu: $(grep -E 'memory-backend|^node,|pxb-pcie|feos-gpu0-rp' <<<"$cmdline" | tr '\n' ' ')"
  check "qemu: guest RAM from a backend bound to host node 1" \
    eval "grep -q '^memory-backend-ram,id=ram-node0,.*host-nodes=1,policy=bind' <<<\"\$cmdline\""
  check "qemu: the card's root port on guest node 0's expander bus" \
    eval "grep -q '^pxb-pcie,id=feos-numa0,.*numa_node=0' <<<\"\$cmdline\" && grep -q '^pcie-root-port,id=feos-gpu0-rp,bus=feos-numa0,' <<<\"\$cmdline\""
  local t allowed vcpus="" others=0 node1
  node1=$(cat /sys/devices/system/node/node1/cpulist)
  for t in /proc/"$pid"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == CPU* ]] || continue
    allowed=$(awk '/^Cpus_allowed_list/{print $2}' "$t/status")
    vcpus="$vcpus $(tr -d ' ' < "$t/comm")=$allowed"
    [ "$allowed" = "$node1" ] || others=$((others + 1))
  done
  ev "vCPU threads and their CPUs:${vcpus:- none found}; host node 1's CPUs: $node1"
  check "host: every vCPU thread may run on host node 1's CPUs ($node1) only" \
    eval "[ -n '$vcpus' ] && [ $others -eq 0 ]"
  # qemu started on node 1's CPUs, so its other threads (the preallocation threads were among
  # them) stay there too.
  allowed=$(awk '/^Cpus_allowed_list/{print $2}' "/proc/$pid/status")
  check "host: qemu's main thread started on host node 1's CPUs ($allowed)" [ "$allowed" = "$node1" ]
  if wait_guest "$id" gpu_numa; then
    ev "from vm create to guest init done: $(since "$t0") s"
    ram=$(awk '/ bind:1 / && / N[0-9]+=/' "/proc/$pid/numa_maps" | sort -t= -k2 -n | tail -1)
    ev "host numa_maps (the guest RAM): ${ram:-none}"
    check "host: the guest RAM's pages lie on node 1 only" \
      eval "[[ '$ram' == *' N1='* && '$ram' != *' N0='* ]]"
    card=$(tr -d '\r' < "$E2E_RESULTS/gpu_numa-console.log" \
      | awk '$1=="E2E-L2-PCI" && $2=="after" && $4=="1234:1111" && $5=="class=0x038000" && $6=="drv=bochs-drm" {print $3, $7}')
    check "guest: bochs-drm drives the card, on NUMA node 0 ($card)" [ "${card#* }" = numa=0 ]
    check "guest: one NUMA node" eval "guest_line gpu_numa '^E2E-L2-NUMA after online=0$' >/dev/null"
  fi
  keep_console "$id" gpu_numa
  delete_vm "$id"
  check "after delete: card D back on bochs-drm" wait_host_drivers 30 "$CARD_D"
}

# GPU case 2: cards A and B in one VM: the guest sees both cards, drivers bind to both. The VM
# stays running for the isolation, refusal, crash and release cases.
case_gpu_two() {
  need_gpu_cli || return 0
  local id t0 vga disp
  t0=$(now)
  start_vm --gpu $CARD_A$NOROM --gpu $CARD_B$NOROM "${L2_BOOT[@]}"
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  id=$VM_ID
  SHARED_VM=$id
  ev "vm $id started in $(since "$t0") s; daemon says assigned: $(vm_functions "$id")"
  check "card A (both functions) and card B on vfio-pci" on_vfio $CARD_A $CARD_A_AUDIO $CARD_B
  check "qemu of vm $id holds groups $(grp $CARD_A) and $(grp $CARD_B)" wait_held "$id" 10 $CARD_A $CARD_A_AUDIO $CARD_B
  check "daemon reports three functions assigned" [ "$(vm_functions "$id")" = "$CARD_A $CARD_A_AUDIO $CARD_B" ]
  wait_guest "$id" gpu_two || return 1
  ev "from vm create to guest init done: $(since "$t0") s"
  check_guest_card_a gpu_two
  vga=$(guest_dev gpu_two 1234:1111 0x030000 bochs-drm)
  disp=$(guest_dev gpu_two 1234:1111 0x038000 bochs-drm)
  check "guest: bochs-drm drives card B (${disp:-none})" [ -n "$disp" ]
  check "guest: cards A and B in different slots" eval "[ -n '$vga' ] && [ -n '$disp' ] && [ '${vga%.*}' != '${disp%.*}' ]"
  check "guest: two DRM cards" eval "guest_line gpu_two '^E2E-L2-DRM .*card0 .*card1' >/dev/null"
  check "guest: EDID read from both cards" \
    eval "[ \$(guest_line gpu_two '^E2E-L2-EDID after .*bytes=[1-9]' | wc -l) -ge 2 ]"
  keep_console "$id" gpu_two
}

# ensure_shared_vm: a running VM holding cards A and B (gpu_two's, or a new one when that case
# was not run or failed early; its guest need not have booted). Returns 2 when the daemon
# answers UNIMPLEMENTED.
ensure_shared_vm() {
  if [ -n "$SHARED_VM" ] && [ -n "$(qemu_of "$SHARED_VM")" ]; then return 0; fi
  start_vm --gpu $CARD_A$NOROM --gpu $CARD_B$NOROM "${L2_BOOT[@]}" || return $?
  SHARED_VM=$VM_ID
  ev "started vm $SHARED_VM holding cards A and B"
  wait_held "$SHARED_VM" 30 $CARD_A $CARD_A_AUDIO $CARD_B
}

# GPU case 3: while the VM runs, the host's driver links point to vfio-pci, and neither
# drivers_probe nor a bind by the host driver takes a device back.
case_isolation() {
  need_gpu_cli || return 0
  ensure_shared_vm
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  local d host out
  for d in $CARD_A $CARD_A_AUDIO $CARD_B; do
    host=${HOST_DRIVER[$d]}
    check "$d driver link -> vfio-pci" [ "$(basename "$(readlink "$PCI/$d/driver")")" = vfio-pci ]
    echo "$d" > /sys/bus/pci/drivers_probe 2>/dev/null
    check "$d still on vfio-pci after drivers_probe" [ "$(drv "$d")" = vfio-pci ]
    if out=$( (echo "$d" > "/sys/bus/pci/drivers/$host/bind") 2>&1); then
      bad "$host/bind of $d succeeded"
    else
      ok "$host/bind of $d refused by the kernel: ${out##*: }"
    fi
    check "$d still on vfio-pci after $host/bind" [ "$(drv "$d")" = vfio-pci ]
    ev "$(describe "$d")"
  done
  check "qemu of vm $SHARED_VM still holds the devices" held_by_vm "$SHARED_VM" $CARD_A $CARD_A_AUDIO $CARD_B
}

# GPU case 4: refusals before any qemu starts, with the right code and a message naming the
# device; nothing changes on the host.
case_refusals() {
  need_gpu_cli || return 0
  local before_qemu before_vms before_drivers d
  before_qemu=$(qemu_pids)
  before_vms=$(vm_ids)
  before_drivers=$(driver_snapshot)
  refused $CODE_NOT_VIABLE $BR_NIC vm create --gpu $BR_GPU "${L2_BOOT[@]}"
  refused $CODE_NO_DEVICE 0000:7f:00.0 vm create --gpu 0000:7f:00.0 "${L2_BOOT[@]}"
  refused $CODE_NO_DEVICE 0001:01:00.0 vm create --gpu 0001:01:00.0 "${L2_BOOT[@]}"
  refused $CODE_NOT_GPU $NIC vm create --gpu $NIC "${L2_BOOT[@]}"
  refused $CODE_NOT_GPU 0000:00:02.0 vm create --gpu 0000:00:02.0 "${L2_BOOT[@]}"
  for d in 0000:01:00 0000:01:00.8 0000:01:20.0 00000:01:00.0 0000:01:00.0x zz:00.0 ../../../sys; do
    refused $CODE_MALFORMED "$d" vm create --gpu "$d" "${L2_BOOT[@]}"
  done
  check "no qemu started by these refusals" [ "$(qemu_pids)" = "$before_qemu" ]
  check "no VM left behind by these refusals" [ "$(vm_ids)" = "$before_vms" ]
  check "no device moved by these refusals" [ "$(driver_snapshot)" = "$before_drivers" ]
  # GPUs held by another VM.
  ensure_shared_vm
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  before_qemu=$(qemu_pids)
  before_vms=$(vm_ids)
  before_drivers=$(driver_snapshot)
  refused $CODE_IN_USE $CARD_A vm create --gpu $CARD_A "${L2_BOOT[@]}"
  refused $CODE_IN_USE $CARD_B vm create --gpu $CARD_B "${L2_BOOT[@]}"
  # By its audio function: refused either as in use or as not a GPU, naming card A.
  refused $CODE_IN_USE "$CARD_A|$CARD_A_AUDIO" vm create --gpu $CARD_A_AUDIO "${L2_BOOT[@]}"
  check "no qemu started by the in-use refusals" [ "$(qemu_pids)" = "$before_qemu" ]
  check "no VM left behind by the in-use refusals" [ "$(vm_ids)" = "$before_vms" ]
  check "no device moved by the in-use refusals" [ "$(driver_snapshot)" = "$before_drivers" ]
  check "the running VM still holds cards A and B" held_by_vm "$SHARED_VM" $CARD_A $CARD_A_AUDIO $CARD_B
}

# GPU case 6b: kill -9 feosd while a GPU VM runs; restart: the VM keeps its GPUs (same qemu,
# devices still held, the guest still sees them bound and reads the cards), and (case release)
# delete then returns them.
case_crash_while_running() {
  need_gpu_cli || return 0
  ensure_shared_vm
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  local id=$SHARED_VM pid
  pid=$(qemu_of "$id")
  stop_feosd KILL
  ev "feosd killed (-9) while vm $id (qemu $pid) runs"
  check "qemu $pid survives" kill -0 "$pid"
  check "cards A and B stay on vfio-pci, held by qemu $pid" held_by_vm "$id" $CARD_A $CARD_A_AUDIO $CARD_B
  start_feosd || { bad "feosd did not restart"; return 1; }
  check "after restart: same qemu $pid" [ "$(qemu_of "$id")" = "$pid" ]
  check "after restart: the devices still held by the VM" held_by_vm "$id" $CARD_A $CARD_A_AUDIO $CARD_B
  check "after restart: vm reported running" [ "$(vm_state "$id")" = VM_STATE_RUNNING ]
  check "after restart: nothing stranded on vfio-pci: '$(stranded)'" [ -z "$(stranded)" ]
  ev "after restart daemon says assigned: $(vm_functions "$id")"
  # The guest, asked over the restarted daemon's console stream, still has its cards bound and
  # reads them (EDID over the MMIO BAR) - only when its init finished (gpu_two waited for it).
  if guest_line gpu_two '^E2E-L2-READY' >/dev/null 2>&1; then
    if guest_pci "$id" gpu_two restarted; then
      ok "guest answers on the console stream of the restarted daemon"
      check "guest: card A VGA still on bochs-drm" [ -n "$(guest_dev gpu_two 1234:1111 0x030000 bochs-drm restarted)" ]
      check "guest: card A audio still on snd_hda_intel" [ -n "$(guest_dev gpu_two 8086:293e 0x040300 snd_hda_intel restarted)" ]
      check "guest: card B still on bochs-drm" [ -n "$(guest_dev gpu_two 1234:1111 0x038000 bochs-drm restarted)" ]
      check "guest: both cards still answer (EDID)" \
        eval "[ \$(guest_line gpu_two '^E2E-L2-EDID restarted .*bytes=[1-9]' | wc -l) -ge 2 ]"
    else
      bad "guest did not answer on the console after the restart"
    fi
  else
    ev "guest not booted (gpu_two not run): guest-side check left out"
  fi
}

# GPU case 5: after delete every device is back on its host driver (and works there), and a new
# VM takes the GPU again.
case_release() {
  need_gpu_cli || return 0
  ensure_shared_vm
  case $? in 0) ;; 2) return 0 ;; *) return 1 ;; esac
  local d
  delete_vm "$SHARED_VM"
  SHARED_VM=""
  check "all devices back on their host drivers" wait_host_drivers 30
  check "driver_override cleared on cards A and B" \
    [ "$(override $CARD_A)$(override $CARD_A_AUDIO)$(override $CARD_B)" = "(null)(null)(null)" ]
  check "host driver works again: DRM card for $CARD_A" eval "ls $PCI/$CARD_A/drm | grep -c '^card' >/dev/null"
  check "host driver works again: sound card for $CARD_A_AUDIO" [ -d "$PCI/$CARD_A_AUDIO/sound" ]
  check "/dev/vfio/$(grp $CARD_A) gone" [ ! -e "/dev/vfio/$(grp $CARD_A)" ]
  for d in $CARD_A $CARD_A_AUDIO $CARD_B; do ev "$(describe "$d")"; done
  start_vm --gpu $CARD_A$NOROM "${L2_BOOT[@]}" || return 1
  check "a new VM $VM_ID takes card A again" wait_held "$VM_ID" 30 $CARD_A $CARD_A_AUDIO
  delete_vm "$VM_ID"
  check "card A back on its host drivers" wait_host_drivers 30 "$CARD_A $CARD_A_AUDIO"
}

# GPU case 6a: kill -9 feosd in the middle of preparing a VM's devices, restart it: nothing is
# stranded on vfio-pci, and deleting what is left returns every device. The daemon is frozen
# (SIGSTOP) at a moment the suite sees, so the kill lands mid-prepare for certain: first right
# after it wrote a driver_override, then after it moved the first device to vfio-pci.
VFIO_DRV=/sys/bus/pci/drivers/vfio-pci
crash_during_prepare() {  # $1: override | bound
  local stage=$1 try caught="" out=$E2E_RESULTS/crash-create.out cpid v a b o q d i
  for try in 1 2 3; do
    ctl vm create --gpu $CARD_A$NOROM --gpu $CARD_B$NOROM "${L2_BOOT[@]}" --start > "$out" 2>&1 &
    cpid=$!
    # Tight polls without forks (bash builtins only).
    if [ "$stage" = override ]; then
      while kill -0 $cpid 2>/dev/null; do
        read -r v < "$PCI/$CARD_A/driver_override"; [ "$v" = vfio-pci ] && break
        read -r v < "$PCI/$CARD_B/driver_override"; [ "$v" = vfio-pci ] && break
      done
    else
      while kill -0 $cpid 2>/dev/null; do
        [ "$PCI/$CARD_A/driver" -ef $VFIO_DRV ] || [ "$PCI/$CARD_A_AUDIO/driver" -ef $VFIO_DRV ] \
          || [ "$PCI/$CARD_B/driver" -ef $VFIO_DRV ] && break
      done
    fi
    kill -STOP "$FEOSD_PID"
    a="$(drv $CARD_A)/$(drv $CARD_A_AUDIO)"; b=$(drv $CARD_B); q=$(qemu_pids)
    o="$(override $CARD_A)/$(override $CARD_A_AUDIO)/$(override $CARD_B)"
    ev "$stage try $try: feosd frozen: drivers A $a, B $b; overrides $o; qemu: ${q:-none}"
    stop_feosd KILL
    wait $cpid 2>/dev/null
    ev "$stage try $try: feosctl: $(tail -1 "$out")"
    if [ -z "$q" ] && [[ "$a/$b/$o" == *vfio-pci* ]]; then caught=$try; fi
    start_feosd || { bad "feosd did not restart"; return 1; }
    if [ -z "$caught" ] && unimplemented "$out"; then
      for v in $(vm_ids); do ctl vm delete "$v" >/dev/null 2>&1; done
      return 0
    fi
    [ -n "$caught" ] && break
    # Not caught in the middle: clean up and try again.
    for v in $(vm_ids); do ctl vm delete "$v" >/dev/null 2>&1; done
    wait_host_drivers 30 >/dev/null
  done
  check "$stage: feosd killed mid-prepare (no qemu yet, preparation begun)" [ -n "$caught" ]
  i=0; while [ -n "$(stranded)" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  check "$stage: after restart nothing stranded on vfio-pci: '$(stranded)'" [ -z "$(stranded)" ]
  for d in $CARD_A $CARD_A_AUDIO $CARD_B; do ev "$stage: after restart: $(describe "$d")"; done
  ctl vm list 2>&1 | sed 's/^/    | vm list: /'
  for v in $(vm_ids); do delete_vm "$v"; done
  check "$stage: after deleting what was left: all devices on their host drivers" wait_host_drivers 30
  check "$stage: driver_override cleared on cards A and B" \
    [ "$(override $CARD_A)$(override $CARD_A_AUDIO)$(override $CARD_B)" = "(null)(null)(null)" ]
  check "$stage: no qemu left" [ -z "$(qemu_pids)" ]
}
case_crash_mid_prepare() {
  need_gpu_cli || return 0
  crash_during_prepare override || return 1
  [ -n "$CASE_SKIP" ] && return 0
  crash_during_prepare bound
}

# Last: no VM, no qemu, every device on its host driver, and feosd stops cleanly.
case_final_state() {
  local v
  for v in $(vm_ids); do
    ev "left over: vm $v"; delete_vm "$v"
  done
  check "every device on its host driver" wait_host_drivers 30
  check "nothing on vfio-pci" eval "[ -z \"\$(ls /sys/bus/pci/drivers/vfio-pci | grep ':')\" ]"
  check "no driver_override left" eval "[ -z \"\$(for d in $ALL_DEVS; do [ \"\$(override \$d)\" = '(null)' ] || echo \$d; done)\" ]"
  check "no qemu running" [ -z "$(qemu_pids)" ]
  stop_feosd TERM
  check "feosd stopped" [ -z "$FEOSD_PID" ]
}

# ---------- main ----------
say "suite start in L1: kernel $(uname -r), $(nproc) CPUs, $(free -m | awk '/Mem:/{print $2}') MiB"
say "loading the host drivers (bochs-drm, snd_hda_intel, e1000e) and vfio-pci"
t0=$(now)
# The HDA codec driver first: snd_hda_intel's async probe otherwise races it.
modprobe -d "$KROOT" -a bochs snd_hda_codec_generic snd_hda_intel e1000e vfio-pci vfio_iommu_type1
for d in $ALL_DEVS; do wait_driver "$d" "${HOST_DRIVER[$d]}" 30; done
say "host drivers loaded in $(since "$t0") s"
lspci -nn -k 2>/dev/null | grep -vE 'Subsystem|modules' | sed 's/^/  lspci: /'
say "starting feosd ($E2E_BIN/feosd, state in $STATE)"
t0=$(now)
if start_feosd; then
  say "feosd up in $(since "$t0") s; feosctl vm create --gpu: $(gpu_cli && echo yes || echo 'not yet')"
else
  echo "CASE feosd_start FAIL (0 s)" | tee -a "$E2E_RESULTS/summary.txt"
  FAILED=$((FAILED + 1))
fi

if [ -n "$FEOSD_PID" ]; then
  run_case host_layout case_host_layout "host layout: groups, drivers, IOMMU"
  run_case topology case_topology "topology: the inventory matches the kernel; placement by it"
  run_case vm_no_gpu case_vm_no_gpu "VM without GPUs boots the L2 guest"
  run_case gpu_one case_gpu_one "one GPU by function 0: both functions, guest drivers bind"
  run_case gpu_big_bar case_gpu_big_bar "a large 64-bit BAR placed by L1's and the guest's SeaBIOS"
  run_case gpu_numa case_gpu_numa "a GPU on host node 1: guest RAM bound there, the guest sees its node"
  run_case gpu_switch_pair case_gpu_switch_pair "two GPUs by count with p2p: the switch pair"
  run_case gpu_two case_gpu_two "two GPUs in one VM"
  run_case isolation case_isolation "host drivers cannot take a passed device back"
  run_case refusals case_refusals "refusals before any qemu starts"
  run_case crash_while_running case_crash_while_running "kill -9 feosd while a GPU VM runs"
  run_case release case_release "delete returns every device; a new VM takes the GPU again"
  run_case crash_mid_prepare case_crash_mid_prepare "kill -9 feosd while it prepares devices"
  run_named_case bench_start case_bench_start "benchmark: StartVm to running by memory size, 4 KiB and 2 MiB pages"
  run_case final_state case_final_state "nothing left: no VM, no qemu, host drivers"
fi
stop_feosd KILL
for p in $(qemu_pids); do kill -9 "$p" 2>/dev/null; done
line="SUMMARY passed=$PASSED failed=$FAILED skipped=$SKIPPED (suite $(since "$SUITE_T0") s in L1)"
echo "$line"
echo "$line" >> "$E2E_RESULTS/summary.txt"
sync
