# Helpers of the end-to-end suite inside L1 (sourced by l1-suite.sh): case runner, checks,
# sysfs facts read straight from the kernel, the daemon and its CLI, L2 guests.
# Assertions read what the host kernel (/sys, /proc) and the guest (its console) report; the
# daemon's own answers are printed as evidence and only checked where they are the subject.

# ---------- time, output ----------
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}'; }
say() { echo "E2E [$(now)] $*"; }          # progress line (run.sh shows these live)
ev() { echo "    | $*"; }                  # evidence line of the current case

CASE_FAILS=0
CASE_SKIP=""
ok() { echo "    ok   $*"; }
bad() { echo "    FAIL $*"; CASE_FAILS=$((CASE_FAILS + 1)); }
# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
skip() { CASE_SKIP=$1; }

PASSED=0
FAILED=0
SKIPPED=0
# run_case NAME FUNCTION TITLE: runs one case, prints `CASE NAME PASS|FAIL|SKIP (S s)` and
# appends it to RESULTS/summary.txt. A case fails when any check failed or the function
# returned non-zero.
run_case() {
  local name=$1 fn=$2 title=$3 t0 rc result secs
  if [ -n "${E2E_CASES:-}" ] && [[ ",$E2E_CASES," != *",$name,"* ]]; then return 0; fi
  CASE_FAILS=0
  CASE_SKIP=""
  say "case $name: $title"
  t0=$(now)
  "$fn"
  rc=$?
  secs=$(since "$t0")
  if [ -n "$CASE_SKIP" ] && [ $CASE_FAILS -eq 0 ]; then
    result=SKIP; SKIPPED=$((SKIPPED + 1))
  elif [ $rc -eq 0 ] && [ $CASE_FAILS -eq 0 ]; then
    result=PASS; PASSED=$((PASSED + 1))
  else
    [ $rc -ne 0 ] && echo "    FAIL case function returned $rc"
    result=FAIL; FAILED=$((FAILED + 1))
  fi
  local line="CASE $name $result ($secs s)${CASE_SKIP:+ - $CASE_SKIP}"
  echo "$line"
  echo "$line" >> "$E2E_RESULTS/summary.txt"
}

# run_named_case NAME FUNCTION TITLE: run_case, only when E2E_CASES names the case (benchmarks:
# not part of the default suite, whose time CI pays on every run).
run_named_case() {
  [[ ",${E2E_CASES:-}," == *",$1,"* ]] || return 0
  run_case "$@"
}

# ---------- sysfs: what the kernel says ----------
PCI=/sys/bus/pci/devices
drv() { if [ -e "$PCI/$1/driver" ]; then basename "$(readlink "$PCI/$1/driver")"; else echo none; fi; }
grp() { if [ -e "$PCI/$1/iommu_group" ]; then basename "$(readlink "$PCI/$1/iommu_group")"; else echo none; fi; }
ids() { echo "$(cut -c3- "$PCI/$1/vendor"):$(cut -c3- "$PCI/$1/device")"; }
class_of() { cat "$PCI/$1/class"; }
override() { local v; v=$(cat "$PCI/$1/driver_override" 2>/dev/null); echo "${v:-(null)}"; }
group_members() { ls "/sys/kernel/iommu_groups/$(grp "$1")/devices" | tr '\n' ' ' | sed 's/ $//'; }
# group_endpoints ADDR: the group's members other than PCI bridges (a switch's downstream port
# shares its device's group when the port has no ACS, as QEMU's xio3130 does).
group_endpoints() {
  local m out=""
  for m in $(group_members "$1"); do [[ $(class_of "$m") == 0x0604* ]] || out="$out $m"; done
  echo "${out# }"
}
# parent_of ADDR: the bridge the function sits behind.
parent_of() { basename "$(dirname "$(readlink -f "$PCI/$1")")"; }
describe() { echo "$1 $(ids "$1") class=$(class_of "$1") group=$(grp "$1") driver=$(drv "$1") override=$(override "$1")"; }

# wait_driver ADDR DRIVER SECONDS: until the device's driver link names DRIVER.
wait_driver() {
  local i=0 n=$(($3 * 10))
  while [ "$(drv "$1")" != "$2" ] && [ $i -lt $n ]; do sleep 0.1; i=$((i + 1)); done
  [ "$(drv "$1")" = "$2" ]
}

# vfio_holders ADDR: pids of the processes that hold the device's /dev/vfio/<group> open.
vfio_holders() {
  find /proc/[0-9]*/fd -maxdepth 1 -lname "/dev/vfio/$(grp "$1")" 2>/dev/null \
    | cut -d/ -f3 | sort -un | tr '\n' ' ' | sed 's/ $//'
}

# qemu_pids: every qemu process in L1 (only feosd starts them here).
qemu_pids() { pgrep -x qemu-system-x86 | sort -n | tr '\n' ' ' | sed 's/ $//'; }
# qemu_of VM_ID: pid of the qemu running that VM (its -name guest=<id>).
qemu_of() { pgrep -f -- "guest=$1" | head -1; }

# ---------- the daemon and its CLI ----------
RUN_DIR=/run/feosd-e2e
SOCK=$RUN_DIR/feosd.sock
STATE=$RUN_DIR/state
FEOSD_PID=
start_feosd() {
  mkdir -p "$RUN_DIR"
  echo "---- feosd start at L1 uptime $(now)" >> "$E2E_RESULTS/feosd.log"
  # A nested TCG guest can take minutes to listen to the ACPI power button: the shutdown grace
  # is long, so vm_no_gpu sees the guest power off by itself, not a forced power-off.
  # shellcheck disable=SC2086
  "$E2E_BIN/feosd" --socket "$SOCK" --state-dir "$STATE" --accel tcg --log-level debug \
    --shutdown-grace 600 ${E2E_FEOSD_ARGS:-} >> "$E2E_RESULTS/feosd.log" 2>&1 &
  FEOSD_PID=$!
  local i
  for i in $(seq 1 300); do
    [ -S "$SOCK" ] && ctl vm list >/dev/null 2>&1 && return 0
    kill -0 "$FEOSD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "feosd did not come up:"; tail -20 "$E2E_RESULTS/feosd.log"
  return 1
}
stop_feosd() {  # $1: signal (default TERM)
  [ -n "$FEOSD_PID" ] || return 0
  kill -"${1:-TERM}" "$FEOSD_PID" 2>/dev/null
  wait "$FEOSD_PID" 2>/dev/null
  FEOSD_PID=
}
ctl() { "$E2E_BIN/feosctl" --socket "$SOCK" "$@"; }
# gpu_cli: whether this feosctl has GPU passthrough (vm create --gpu).
gpu_cli() { ctl vm create --help 2>/dev/null | grep -c -- '--gpu' >/dev/null; }
# unimplemented FILE: the feosctl output in FILE is the daemon's UNIMPLEMENTED answer: marks the
# case skipped with it (a feature that has not landed yet, not a failure).
unimplemented() {
  grep -c 'error: UNIMPLEMENTED' "$1" >/dev/null || return 1
  skip "daemon answered $(grep -o 'UNIMPLEMENTED.*' "$1" | tail -1)"
}

# start_vm ARGS...: `feosctl vm create ARGS --start`; sets VM_ID. Returns 0 when it runs; 2 when
# the daemon answered UNIMPLEMENTED (case marked skipped); 1 otherwise (check failed). A VM
# created but not started is deleted again.
VM_ID=""
start_vm() {
  local f=$E2E_RESULTS/.create.out rc=0 id
  VM_ID=""
  ev "\$ feosctl vm create $* --start"
  ctl vm create "$@" --start > "$f" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then VM_ID=$(tail -1 "$f"); return 0; fi
  for id in $(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' "$f" | sort -u); do
    ctl vm delete "$id" >/dev/null 2>&1
  done
  unimplemented "$f" && return 2
  bad "vm create $* --start: $(tail -1 "$f")"
  return 1
}

# json FILE PYTHON_EXPR: evaluates the expression on the parsed document `j`, prints the result
# (lists one item a line).
json() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
r = eval(sys.argv[2])
if isinstance(r, (list, tuple, set)):
    for x in r: print(x)
elif r is not None:
    print(r)
PY
}
# vm_json ID FILE: `feosctl vm get ID -o json` into FILE.
vm_json() { ctl vm get "$1" -o json > "$2"; }
# vm_functions ID: the host functions the daemon says it assigned (gpus[].functions and peers).
vm_functions() {
  local f=$E2E_RESULTS/.vm.json
  vm_json "$1" "$f" || return 1
  json "$f" "sorted(fn['address'] for g in j.get('gpus', []) for fn in g.get('functions', []) + g.get('group_peers', []))" \
    | tr '\n' ' ' | sed 's/ $//'
}
# vm_ids: ids of every VM the daemon lists, sorted, space separated.
vm_ids() {
  local f=$E2E_RESULTS/.vms.json
  ctl vm list -o json > "$f" && json "$f" "sorted(v['vm_id'] for v in (j.get('vms', []) if isinstance(j, dict) else j))" \
    | tr '\n' ' ' | sed 's/ $//'
}
vm_state() { local f=$E2E_RESULTS/.vm.json; vm_json "$1" "$f" && json "$f" "j['state']"; }

# names_one_of TEXT A|B|...: TEXT contains one of the |-separated names.
names_one_of() {
  local n
  local IFS='|'
  for n in $2; do [[ $1 == *"$n"* ]] && return 0; done
  return 1
}
# refused CODE NAME ARGS...: `feosctl ARGS` must fail with `feosctl: error: CODE: ...` and the
# message must contain NAME (the device the refusal is about; A|B: one of them). A `vm create` that succeeds
# must then fail at `vm start` the same way (a refusal at start is still before qemu runs);
# such a VM is deleted again. An UNIMPLEMENTED answer marks the case skipped.
refused() {
  local code=$1 name=$2 out rc=0 id f=$E2E_RESULTS/.refused.out
  shift 2
  out=$(ctl "$@" 2>&1) || rc=$?
  if [ $rc -eq 0 ] && [ "$1 $2" = "vm create" ]; then
    id=$(echo "$out" | tail -1)
    out=$(ctl vm start "$id" 2>&1) && rc=0 || rc=$?
    ev "create accepted ($id); start answered rc=$rc: $out"
    ctl vm delete "$id" >/dev/null 2>&1
  fi
  out=$(echo "$out" | tail -1)
  echo "$out" > "$f"
  if unimplemented "$f"; then
    ev "feosctl ${*:3}: not checked, $out"
  elif [ $rc -ne 0 ] && [[ $out == *"error: $code:"* ]] && names_one_of "$out" "$name"; then
    ok "feosctl ${*:3} -> $code naming $name: $out"
  else
    bad "feosctl ${*:3} expected $code naming $name, got rc=$rc: $out"
  fi
}

# ---------- L2 guests ----------
# The boot source of the L2 test guest (PVH vmlinux + busybox initramfs with init.sh), as
# feosctl vm create arguments: use "${L2_BOOT[@]}". Needs setup.sh's env sourced first.
L2_CMDLINE="console=ttyS0 role=l2 panic=-1 mitigations=off quiet"
L2_BOOT=(--kernel "$VMLINUX" --initramfs "$INITRD_L2" --cmdline "$L2_CMDLINE" --memory "${E2E_L2_MEMORY:-256}")
# wait_guest ID NAME [SECONDS]: waits on the console stream until the guest's init is done
# (E2E-L2-READY); keeps the transcript in RESULTS/NAME-console.log, prints the guest's lines.
wait_guest() {
  local id=$1 name=$2 to=${3:-${E2E_L2_WAIT:-600}} t0 rc=0 f=$E2E_RESULTS/$2-console.log
  t0=$(now)
  ctl vm console "$id" --until E2E-L2-READY --wait "$to" > "$f" 2>&1 || rc=$?
  tr -d '\r' < "$f" | grep -E '^E2E-L2' | sed 's/^/    | guest: /'
  if [ $rc -eq 0 ]; then
    ok "guest $name ready after $(since "$t0") s on the console stream"
  else
    bad "guest $name not ready within $to s (rc=$rc); last lines: $(tail -3 "$f" | tr '\r\n' '  ')"
  fi
  return $rc
}
# guest_dev NAME IDS CLASS DRIVER [TAG]: the guest (transcript RESULTS/NAME-console.log) lists a
# function with these ids and class bound to DRIVER in its dump TAG (default: after loading its
# drivers); prints its guest address.
guest_dev() {
  tr -d '\r' < "$E2E_RESULTS/$1-console.log" \
    | awk -v t="${5:-after}" -v i="$2" -v c="class=$3" -v d="drv=$4" \
        '$1=="E2E-L2-PCI" && $2==t && $4==i && $5==c && $6==d {print $3}'
}
# guest_pci ID NAME TAG: asks the running guest for a fresh dump ("pci TAG" on its console);
# appends the transcript to RESULTS/NAME-console.log.
guest_pci() {
  local f=$E2E_RESULTS/$2-$3.log rc=0
  ctl vm console "$1" --send "pci $3" --until "E2E-L2-END $3" --wait "${E2E_L2_CMD_WAIT:-120}" > "$f" 2>&1 || rc=$?
  tr -d '\r' < "$f" | grep -E "^E2E-L2-(PCI|EDID) $3 " | sed 's/^/    | guest: /'
  cat "$f" >> "$E2E_RESULTS/$2-console.log"
  return $rc
}
guest_line() { tr -d '\r' < "$E2E_RESULTS/$1-console.log" | grep -E "$2"; }
