#!/usr/bin/env bash
# Process test: ShutdownVm always ends in STOPPED (issue 16), with the real feosd, feosctl and qemu
# (TCG) and the tiny test guest:
#   - a shutdown sent right after the start, before the guest listens to the power button: the
#     button is pressed again until the guest powers off (or it is forced off), STOPPED within
#     the 30 s FeOS's clients wait;
#   - a guest that never listens (the test guest booted with rdinit=/bin/sh: no button driver) is
#     forced off after the daemon's default grace (20 s), again within 30 s, and its qemu is gone;
#   - a request's own grace (--grace 0) forces it off at once.
# Prints the time from ShutdownVm to STOPPED of each.
# Usage: shutdown_test.sh BIN_DIR   (FEOS_TEST_GUEST_DIR must point at the built test guest)
BIN=$(cd "$1" && pwd)
. "$(dirname "$0")/lib.sh"
: "${FEOS_TEST_GUEST_DIR:?set FEOS_TEST_GUEST_DIR to the test guest (tests/guest/build-guest.sh)}"

# A guest that ignores the power button: busybox's shell instead of the test guest's /init.
DEAF_ARGS=(--kernel "$FEOS_TEST_GUEST_DIR/vmlinuz" --initramfs "$FEOS_TEST_GUEST_DIR/initramfs.cpio"
           --cmdline "console=ttyS0 panic=-1 rdinit=/bin/sh" --memory 256)

reason_of() { ctl vm get "$1" | sed -n 's/^reason: *//p'; }
qemu_pid_of() { ctl vm get "$1" -o json | sed -n 's/.*"pid": *"\{0,1\}\([0-9]*\).*/\1/p' | head -1; }

# shutdown_until_stopped ID LIMIT [ARGS...]: ShutdownVm, then waits for STOPPED; sets TOOK (s).
shutdown_until_stopped() {
  local id=$1 limit=$2 t0; shift 2
  t0=$(date +%s.%N)
  ctl vm shutdown "$id" "$@" || return 1
  ctl vm events "$id" --until-state stopped --wait "$limit" >/dev/null || return 1
  TOOK=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
}

start_daemon

# --- right after the start ---
ID=$(ctl vm create "${GUEST_ARGS[@]}" --start)
if shutdown_until_stopped "$ID" 30; then
  pass "shutdown right after start: stopped after $TOOK s ($(reason_of "$ID"))"
else
  fail "shutdown right after start: not stopped within 30 s ($(ctl vm get "$ID" 2>&1 | tr '\n' ' '))"
fi
ctl vm events "$ID" --tail 10 --no-follow --idle-ms 3000 | grep -q "shutdown requested: ACPI power button pressed" \
  && pass "the request is an event" || fail "no request event: $(ctl vm events "$ID" --tail 10 --no-follow)"
ctl vm delete "$ID"

# --- a guest that never listens: the daemon's grace ---
ID=$(ctl vm create "${DEAF_ARGS[@]}" --start)
QPID=$(qemu_pid_of "$ID")
if shutdown_until_stopped "$ID" 30; then
  pass "deaf guest: stopped after $TOOK s within FeOS's 30 s"
else
  fail "deaf guest: not stopped within 30 s ($(ctl vm get "$ID" 2>&1 | tr '\n' ' '))"
fi
reason=$(reason_of "$ID")
grep -q '^forced off after 20 s: the guest did not power off after [0-9]* presses of the ACPI power button$' <<<"$reason" \
  && pass "reason: $reason" || fail "reason: $reason"
awk -v t="$TOOK" 'BEGIN { exit !(t >= 19.5) }' && pass "not forced off before the grace ($TOOK s)" \
  || fail "forced off after $TOOK s, before the 20 s grace"
qemu_state=$(ps -o stat= -p "$QPID" 2>/dev/null || true)
[[ -z "$qemu_state" || "$qemu_state" == Z* ]] && pass "its qemu $QPID is gone" || fail "qemu $QPID still runs ($qemu_state)"

# --- the request's own grace, and the VM starts again after a forced power-off ---
ctl vm start "$ID"
if shutdown_until_stopped "$ID" 10 --grace 0; then
  pass "--grace 0: stopped after $TOOK s ($(reason_of "$ID"))"
else
  fail "--grace 0: not stopped within 10 s"
fi
grep -q '^forced off after 0 s' <<<"$(reason_of "$ID")" && pass "forced off at once" || fail "reason: $(reason_of "$ID")"
out=$(ctl vm shutdown "$ID" 2>&1) && fail "shutdown of a stopped VM accepted" \
  || { grep -q "FAILED_PRECONDITION: vm $ID: Invalid VM state for operation: Cannot shutdown VM in Stopped state" <<<"$out" \
         && pass "stopped VM: $out" || fail "shutdown of a stopped VM: $out"; }
ctl vm delete "$ID"
finish
