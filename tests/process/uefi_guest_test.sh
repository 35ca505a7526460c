#!/usr/bin/env bash
# Process test (issue 13): UEFI guests through the real feosd + feosctl and the real OVMF from
# Debian's ovmf package, booting the tiny test guest under qemu (TCG).
#   - `vm create --firmware uefi`: the guest boots through OVMF (the kernel's EFI stub reports it);
#     the VM's own variable store is copied from the firmware's template at the first start and
#     is the same file (inode) after a shutdown, a daemon restart and another start;
#   - `--secure-boot`: the guest kernel reports Secure Boot enabled;
#   - a damaged variable store: start is FAILED_PRECONDITION naming the file, nothing runs;
#   - a host without OVMF (no firmware descriptors): create is FAILED_PRECONDITION, nothing recorded;
#   - delete removes the store with the VM.
# Usage: uefi_guest_test.sh BIN_DIR   (FEOS_TEST_GUEST_DIR must point at the built test guest)
# Skipped (77) when Debian's OVMF descriptors are missing.
BIN=$(cd "$1" && pwd)
. "$(dirname "$0")/lib.sh"
: "${FEOS_TEST_GUEST_DIR:?set FEOS_TEST_GUEST_DIR to the test guest (tests/guest/build-guest.sh)}"
[ -f /usr/share/qemu/firmware/60-edk2-x86_64.json ] || { echo "SKIP: Debian's ovmf is not installed"; exit 77; }

boot() {  # boot ID WHAT: start, then the marker on the console; the console text in $WORK/<ID>.txt
  local t0; t0=$(date +%s.%N)
  ctl vm start "$1"
  if ctl vm console "$1" --until FEOS-TEST-GUEST-READY --wait 180 >"$WORK/$1.txt"; then
    pass "$2: booted in $(echo "$(date +%s.%N) - $t0" | bc) s"
  else
    fail "$2: no marker on the console: $(tail -5 "$WORK/$1.txt")"
  fi
}
shut_down() {
  ctl vm shutdown "$1"
  ctl vm events "$1" --until-state stopped --wait 120 >/dev/null && pass "stopped" || fail "$1 not stopped"
}

start_daemon
ID=$(ctl vm create "${GUEST_ARGS[@]}" --firmware uefi)
ctl vm get "$ID" | grep -q '^firmware: *uefi$' && pass "vm get shows the firmware" || fail "vm get: $(ctl vm get "$ID")"
VARS=$STATE/vms/$ID/uefi-vars.fd
[ ! -e "$VARS" ] && pass "no variable store before the first start" || fail "store exists at create"
boot "$ID" "UEFI"
grep -q "efi: EFI v" "$WORK/$ID.txt" && pass "the guest booted through UEFI (EDK II)" \
  || fail "no EFI in the guest's log: $(grep -m3 -i efi "$WORK/$ID.txt")"
TEMPLATE=$(sed -n 's/.*"filename": *"\(.*OVMF_VARS[^"]*\)".*/\1/p' /usr/share/qemu/firmware/60-edk2-x86_64.json)
[ "$(stat -c %s "$VARS")" = "$(stat -c %s "$TEMPLATE")" ] && [ "$(stat -c %a "$VARS")" = 600 ] \
  && pass "the store is a private copy of $TEMPLATE" || fail "store: $(ls -l "$VARS")"
INODE=$(stat -c %i "$VARS")
shut_down "$ID"
stop_daemon
start_daemon
boot "$ID" "UEFI after a daemon restart"
[ "$(stat -c %i "$VARS")" = "$INODE" ] && pass "the VM kept its variable store across restarts" \
  || fail "the store was replaced (inode $INODE -> $(stat -c %i "$VARS"))"
shut_down "$ID"

# A damaged store is refused, naming the file; nothing runs.
printf 'garbage' | dd of="$VARS" bs=1 seek=40 conv=notrunc status=none
expect_error FAILED_PRECONDITION vm start "$ID"
refusal=$(ctl vm start "$ID" 2>&1 || true)
grep -q "UEFI variable store $VARS: no firmware volume header" <<<"$refusal" \
  && pass "the refusal names the store" || fail "refusal: $refusal"
[ -z "$(test_qemu_pids)" ] && pass "no qemu runs" || fail "qemu runs: $(test_qemu_pids)"
ctl vm delete "$ID"
[ ! -e "$STATE/vms/$ID" ] && pass "delete removed the store with the VM" || fail "left: $(ls "$STATE/vms/$ID")"

# Secure Boot: Microsoft's keys enrolled, SMM; the Debian kernel verifies and says so.
SB=$(ctl vm create "${GUEST_ARGS[@]}" --secure-boot)
boot "$SB" "Secure Boot"
grep -q "secureboot: Secure boot enabled" "$WORK/$SB.txt" && pass "the guest runs with Secure Boot enabled" \
  || fail "Secure Boot not reported: $(grep -i -m3 secure "$WORK/$SB.txt")"
ctl vm delete "$SB"

# A host without OVMF: UEFI is refused at create, naming where it looked; BIOS still works.
stop_daemon
mkdir -p "$WORK/no-firmware"
start_daemon --firmware-dir "$WORK/no-firmware"
expect_error FAILED_PRECONDITION vm create "${GUEST_ARGS[@]}" --firmware uefi
refusal=$(ctl vm create "${GUEST_ARGS[@]}" --firmware uefi 2>&1 || true)
grep -q "no QEMU firmware descriptor in $WORK/no-firmware" <<<"$refusal" \
  && pass "the refusal says where firmware was looked for" || fail "refusal: $refusal"
[ "$(ctl vm list -o json | grep -c '"vm_id"' || true)" = 0 ] && pass "nothing recorded" || fail "recorded: $(ctl vm list)"
ctl vm create "${GUEST_ARGS[@]}" >/dev/null && pass "BIOS guests need no UEFI firmware" || fail "BIOS create refused"
finish
