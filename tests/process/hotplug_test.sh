#!/usr/bin/env bash
# Process test of disk and NIC hot-plug (issue 16): the real feosd + feosctl, real qemu (TCG)
# booting the test guest. A disk attached to a stopped VM comes with its next start; a disk and a
# NIC (its tap created) attached to the running guest show in the guest's PCI devices and in
# GetVm; after kill -9 of feosd and a restart (adoption), a detach completes, the guest lets the
# disk go and the spec no longer has it; the refusals' codes. Needs root for the tap.
# Usage: hotplug_test.sh BIN_DIR   (FEOS_TEST_GUEST_DIR must point at the built test guest)
BIN=$(cd "$1" && pwd)
. "$(dirname "$0")/lib.sh"
: "${FEOS_TEST_GUEST_DIR:?set FEOS_TEST_GUEST_DIR to the test guest (tests/guest/build-guest.sh)}"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: creating a tap needs root"; exit 77; }

TAP=fhpt$$
cleanup_tap() { ip link delete "$TAP" 2>/dev/null || true; cleanup; }
trap cleanup_tap EXIT

# pci_count ID PATTERN: how many of the guest's PCI functions match PATTERN (vendor:device). Each
# listing has its own tag (the time: this runs in subshells): the console replays earlier output
# to a new reader.
pci_count() {
  local tag
  tag=t$(date +%s%N)
  ctl vm console "$1" --send "LSPCI-$tag" --until "LSPCI-END-$tag" --wait 30 | grep -cE "^PCI-$tag:.* $2" || true
}
# wait_pci ID PATTERN N: waits up to 60 s until the guest lists N such functions.
wait_pci() {
  for _ in $(seq 1 60); do [ "$(pci_count "$1" "$2")" -eq "$3" ] && return 0; sleep 1; done
  return 1
}
# virtio disks and NICs: transitional ids on the root bus (boot-time devices), modern ones behind
# the hot-plug ports.
BLK='0x1af4:0x10(01|42)'
NET='0x1af4:0x10(00|41)'
# quiet: no kernel messages between the lines of a listing.
GUEST_ARGS=(--kernel "$FEOS_TEST_GUEST_DIR/vmlinuz" --initramfs "$FEOS_TEST_GUEST_DIR/initramfs.cpio"
  --cmdline "console=ttyS0 quiet panic=-1" --memory 256)

truncate -s 1M "$WORK/boot-disk.raw" "$WORK/live-disk.raw"
start_daemon --hotplug-ports 2
ID=$(ctl vm create "${GUEST_ARGS[@]}")
OUT=$(ctl vm disk attach "$ID" "$WORK/boot-disk.raw,id=bootdata")
[ "$OUT" = bootdata ] && pass "disk attached to a created VM: $OUT" || fail "attach to created VM printed '$OUT'"
expect_error ALREADY_EXISTS vm disk attach "$ID" "$WORK/live-disk.raw,id=bootdata"
expect_error NOT_FOUND vm nic detach "$ID" nope
ctl vm start "$ID"
ctl vm console "$ID" --until FEOS-TEST-GUEST-READY --wait 120 >/dev/null || fail "guest did not boot"
wait_pci "$ID" "$BLK" 1 && pass "the next start has the disk" || fail "disks at start: $(pci_count "$ID" "$BLK")"

t0=$(date +%s.%N)
ctl vm disk attach "$ID" "$WORK/live-disk.raw,id=live"
wait_pci "$ID" "$BLK" 2 && pass "guest sees the live disk after $(echo "$(date +%s.%N) - $t0" | bc) s" \
  || fail "guest does not see the live disk"
ctl vm nic attach "$ID" "$TAP,id=eth1" >/dev/null
ip link show "$TAP" >/dev/null 2>&1 && pass "missing tap $TAP created" || fail "tap $TAP not created"
wait_pci "$ID" "$NET" 1 && pass "guest sees the live NIC" || fail "guest does not see the live NIC"
ctl vm get "$ID" -o json >"$WORK/get1.json"
grep -q '"live"' "$WORK/get1.json" && grep -q '"eth1"' "$WORK/get1.json" && grep -q "$TAP" "$WORK/get1.json" \
  && pass "GetVm shows the live disk and NIC" || fail "GetVm: $(cat "$WORK/get1.json")"
grep -q '52:54:00:' "$WORK/get1.json" && pass "a MAC was generated and stored" || fail "no MAC stored"
expect_error RESOURCE_EXHAUSTED vm disk attach "$ID" "$WORK/boot-disk.raw,ro,id=third"
expect_error FAILED_PRECONDITION vm disk detach "$ID" bootdata

# A restarted daemon adopts the qemu and detaches what the earlier one plugged.
stop_daemon KILL
start_daemon --hotplug-ports 2
t0=$(date +%s.%N)
ctl vm disk detach "$ID" live && pass "detach after a daemon restart took $(echo "$(date +%s.%N) - $t0" | bc) s" \
  || fail "detach after restart"
wait_pci "$ID" "$BLK" 1 && pass "guest released the disk" || fail "guest still lists the disk"
ctl vm nic detach "$ID" eth1 && pass "NIC detached" || fail "NIC detach"
# feosd made the tap (and recorded that before its restart): it goes with the NIC.
! ip link show "$TAP" >/dev/null 2>&1 && pass "the tap feosd created went with the NIC" || fail "tap $TAP left"
ctl vm get "$ID" -o json >"$WORK/get2.json"
! grep -q '"live"' "$WORK/get2.json" && ! grep -q '"eth1"' "$WORK/get2.json" \
  && pass "the spec lost both" || fail "GetVm after detach: $(cat "$WORK/get2.json")"
ctl vm events "$ID" --no-follow --tail 30 | grep -ci 'attached\|detached' | grep -q '^[4-9]' \
  && pass "events for every attach and detach" || fail "events: $(ctl vm events "$ID" --no-follow --tail 30)"
ctl vm delete "$ID"
finish
