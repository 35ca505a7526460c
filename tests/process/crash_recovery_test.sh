#!/usr/bin/env bash
# Process test (issue 17, items 2 and 3): the real feosd + feosctl + qemu (TCG), killed and
# damaged at the worst moments.
# - kill -9 of feosd right after StartVm launched qemu (a wrapper holds qemu back 3 s, so the kill
#   lands between launch and "running" every time): after the restart the half-started qemu is
#   found and stopped, the VM says why, and the next StartVm runs exactly one qemu;
# - a second daemon never starts a qemu beside a live one of the same VM;
# - feosd.db truncated to 0 bytes, then deleted, while a VM runs: feosd refuses to start and says
#   how to recover; with --discard-unknown-vms the orphaned qemu is killed and its runtime
#   directory set aside.
# Usage: crash_recovery_test.sh BIN_DIR   (FEOS_TEST_GUEST_DIR must point at the built test guest)
BIN=$(cd "$1" && pwd)
. "$(dirname "$0")/lib.sh"
: "${FEOS_TEST_GUEST_DIR:?set FEOS_TEST_GUEST_DIR to the test guest (tests/guest/build-guest.sh)}"

# qemu processes whose command line names VM $1.
qemus_of() { pgrep -f -- "guest=$1," || true; }
count_qemus() { qemus_of "$1" | grep -c . || true; }

# A qemu that takes 3 s before it really starts: feosd has launched it, nothing runs yet.
QEMU=$(command -v qemu-system-x86_64)
cat >"$WORK/slow-qemu" <<EOF
#!/bin/sh
sleep 3
exec $QEMU "\$@"
EOF
chmod 755 "$WORK/slow-qemu"

# --- kill -9 of feosd between launching qemu and recording the VM as running ---
start_daemon --qemu "$WORK/slow-qemu"
ID=$(ctl vm create "${GUEST_ARGS[@]}")
(ctl vm start "$ID" >"$WORK/start.out" 2>&1 &)
for _ in $(seq 1 100); do [ "$(count_qemus "$ID")" -ge 1 ] && break; sleep 0.05; done
[ "$(count_qemus "$ID")" -eq 1 ] && pass "StartVm launched qemu (pid $(qemus_of "$ID"))" || fail "no qemu launched"
stop_daemon KILL
ORPHAN=$(qemus_of "$ID")
[ -n "$ORPHAN" ] && pass "qemu $ORPHAN outlives the killed feosd" || fail "qemu died with feosd"
start_daemon --qemu "$WORK/slow-qemu"
for _ in $(seq 1 100); do [ "$(count_qemus "$ID")" -eq 0 ] && break; sleep 0.1; done
[ "$(count_qemus "$ID")" -eq 0 ] && pass "the restarted feosd stopped the half-started qemu" \
  || fail "qemu of $ID still runs after the restart: $(qemus_of "$ID")"
state=$(ctl vm get "$ID")
grep -qi 'created' <<<"$state" && grep -q 'start interrupted by a feosd restart' <<<"$state" \
  && pass "the VM is created again and says why" || fail "after restart: $state"
ctl vm start "$ID" && ctl vm console "$ID" --until FEOS-TEST-GUEST-READY --wait 120 >/dev/null \
  && pass "StartVm after the restart boots the guest" || fail "StartVm after the restart"
[ "$(count_qemus "$ID")" -eq 1 ] && pass "exactly one qemu for the VM" || fail "qemus of $ID: $(qemus_of "$ID")"
stop_daemon

# --- never a second qemu beside a live one ---
# A daemon whose records say "created" for a VM whose qemu runs must not start another: the stored
# record is rolled back by hand with sqlite3's own library through python (the database is
# closed), as a daemon killed before recording "running" would leave it.
/usr/bin/python3 - "$STATE/feosd.db" "$ID" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE vms SET state = 2, state_reason = 'starting', pid = 0 WHERE id = ?", (sys.argv[2],))
db.commit()
PY
start_daemon --qemu "$WORK/slow-qemu"
state=$(ctl vm get "$ID")
grep -qi 'running' <<<"$state" && grep -q 'adopted after a feosd restart' <<<"$state" \
  && pass "a live qemu of a VM recorded as created is adopted: running" || fail "after restart: $state"
expect_error FAILED_PRECONDITION vm start "$ID"
[ "$(count_qemus "$ID")" -eq 1 ] && pass "still exactly one qemu" || fail "qemus of $ID: $(qemus_of "$ID")"
ctl vm console "$ID" --send "still-one" --until "ECHO:still-one" --wait 30 >/dev/null \
  && pass "the adopted guest answers on its console" || fail "console of the adopted guest"

# --- a database that forgets ---
QPID=$(qemus_of "$ID")
stop_daemon KILL
: >"$STATE/feosd.db"
rc=0
out=$(timeout 30 "$BIN/feosd" --socket "$SOCK" --state-dir "$STATE" --accel tcg 2>&1) || rc=$?
if [ $rc -ne 0 ] && grep -q "feosd.db is empty (0 bytes)" <<<"$out" && grep -q -- "--discard-unknown-vms" <<<"$out"; then
  pass "a 0-byte database is refused: $(grep -o 'database .* is empty[^:]*' <<<"$out" | head -1)"
else
  fail "0-byte database: rc=$rc: $out"
fi
rm -f "$STATE"/feosd.db*
rc=0
out=$(timeout 30 "$BIN/feosd" --socket "$SOCK" --state-dir "$STATE" --accel tcg 2>&1) || rc=$?
if [ $rc -ne 0 ] && grep -q "unknown to the database" <<<"$out" && grep -q "$ID" <<<"$out" \
  && grep -q "live qemu pid $QPID" <<<"$out"; then
  pass "a deleted database is refused, naming the VM and its qemu"
else
  fail "deleted database: rc=$rc: $out"
fi
kill -0 "$QPID" 2>/dev/null && pass "the refusal touched nothing: qemu $QPID still runs" || fail "qemu died"
start_daemon --discard-unknown-vms
ctl vm list -o json | grep -q "$ID" && fail "the discarded VM is listed" || pass "no VM listed"
for _ in $(seq 1 50); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
qemu_state=$(ps -o stat= -p "$QPID" 2>/dev/null || true)
[[ -z "$qemu_state" || "$qemu_state" == Z* ]] && pass "--discard-unknown-vms killed qemu $QPID" || fail "qemu $QPID still runs"
ls -d "$STATE/vms.discarded/$ID"-* >/dev/null 2>&1 && [ ! -e "$STATE/vms/$ID" ] \
  && pass "its runtime directory was set aside: $(ls "$STATE/vms.discarded")" || fail "runtime dirs: $(ls "$STATE/vms" "$STATE/vms.discarded" 2>&1)"
stop_daemon
start_daemon
pass "a normal start works again"
finish
