#!/usr/bin/env bash
# Process test: feosd --qemu-user runs every qemu as that unprivileged user (nobody here), under
# qemu's seccomp sandbox. The real feosd + feosctl + qemu (TCG) booting the tiny test guest:
# - feosd refuses to start with --qemu-user root or an unknown user;
# - the VM's qemu has nobody's uid/gid (real, effective, saved), no capabilities, seccomp mode 2;
#   its runtime dir is root:<nobody's group> 1770 while it runs; console, pause/resume work;
# - after kill -9 of feosd the restarted daemon adopts it, and when the guest powers off the runtime
#   dir goes back to root:root 755 (the adopted process's user found from /proc);
# - a disk nobody cannot open is refused at AttachDisk (FAILED_PRECONDITION naming path and user,
#   the spec unchanged), one it can open is plugged and detached, neither file given away;
# - a kernel nobody cannot read fails the start with FAILED_PRECONDITION naming path and user.
# Usage: qemu_user_test.sh BIN_DIR   (FEOS_TEST_GUEST_DIR must point at the built test guest)
# Exit 77 (skipped) when not root.
BIN=$(cd "$1" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (qemu runs as nobody)"
  exit 77
fi
. "$(dirname "$0")/lib.sh"
: "${FEOS_TEST_GUEST_DIR:?set FEOS_TEST_GUEST_DIR to the test guest (tests/guest/build-guest.sh)}"

# nobody must be able to reach the runtime dirs under $STATE (mktemp made $WORK 0700).
chmod 0755 "$WORK"
# ... and the guest's kernel and initramfs: the build tree may sit where nobody cannot traverse (a
# checkout in a 0700 home or mktemp directory), so the test boots copies in a directory of its own
# that user nobody can read.
GUEST=$WORK/guest
mkdir -m 0755 "$GUEST"
install -m 0644 "$FEOS_TEST_GUEST_DIR/vmlinuz" "$FEOS_TEST_GUEST_DIR/initramfs.cpio" "$GUEST/"
use_guest "$GUEST"
UID_N=$(id -u nobody)
GID_N=$(id -g nobody)
GROUP_N=$(id -gn nobody)

# --- refusals ---
for refusal in "root INVALID_ARGUMENT" "feos-no-such-user NOT_FOUND"; do
  read -r user code <<<"$refusal"
  rc=0
  out=$("$BIN/feosd" --socket "$WORK/refused.sock" --state-dir "$WORK/refused" --accel tcg \
    --qemu-user "$user" 2>&1) || rc=$?
  if [ $rc -ne 0 ] && grep -q -- "--qemu-user: $code: user $user " <<<"$out"; then
    pass "feosd refuses --qemu-user $user: $(tail -1 <<<"$out")"
  else
    fail "feosd --qemu-user $user: rc=$rc: $out"
  fi
done

start_daemon --qemu-user nobody

# status_field PID KEY: the value of "KEY:" in /proc/PID/status, fields joined by one space.
status_field() { awk -v key="$2:" '$1 == key { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }

ID=$(ctl vm create "${GUEST_ARGS[@]}")
ctl vm start "$ID"
ctl vm console "$ID" --until FEOS-TEST-GUEST-READY --wait 120 >"$WORK/console1.txt" \
  && pass "guest boots under qemu as nobody" || fail "no marker on console: $(tail -5 "$WORK/console1.txt")"
QPID=$(ctl vm get "$ID" -o json | sed -n 's/.*"pid": *"\{0,1\}\([0-9]*\).*/\1/p' | head -1)
uids=$(status_field "$QPID" Uid)
[ "$uids" = "$UID_N $UID_N $UID_N $UID_N" ] && pass "qemu $QPID uids: $uids" || fail "qemu uids: '$uids'"
gids=$(status_field "$QPID" Gid)
[ "$gids" = "$GID_N $GID_N $GID_N $GID_N" ] && pass "qemu gids: $gids" || fail "qemu gids: '$gids'"
[ "$(status_field "$QPID" CapEff)" = 0000000000000000 ] && pass "qemu has no capabilities" \
  || fail "qemu CapEff: $(status_field "$QPID" CapEff)"
[ "$(status_field "$QPID" Seccomp)" = 2 ] && pass "qemu runs under its seccomp filter" \
  || fail "qemu Seccomp: $(status_field "$QPID" Seccomp)"
RUNDIR=$STATE/vms/$ID
[ "$(stat -c '%U:%G %a' "$RUNDIR")" = "root:$GROUP_N 1770" ] && pass "runtime dir root:$GROUP_N 1770 while qemu runs" \
  || fail "runtime dir: $(stat -c '%U:%G %a' "$RUNDIR")"
[ "$(stat -c '%U' "$RUNDIR/qmp.sock")" = nobody ] && [ "$(stat -c '%U' "$RUNDIR/console.log")" = root ] \
  && pass "qemu's socket is nobody's, the daemon's console log root's" \
  || fail "owners: $(ls -l "$RUNDIR")"
ctl vm console "$ID" --send "as-nobody" --until "ECHO:as-nobody" --wait 30 >/dev/null \
  && pass "console input reaches the guest" || fail "console input not echoed"
ctl vm pause "$ID"; ctl vm get "$ID" | grep -qi 'paused' && pass "paused" || fail "not paused"
ctl vm resume "$ID"; ctl vm get "$ID" | grep -qi 'running' && pass "resumed" || fail "not resumed"

# --- hot-plug into nobody's qemu: checked as nobody before qemu hears of it ---
mkdir -m 0755 "$WORK/disks"
truncate -s 1M "$WORK/disks/open.raw" "$WORK/disks/closed.raw"
chmod 0666 "$WORK/disks/open.raw"
chmod 0600 "$WORK/disks/closed.raw"
rc=0
out=$(ctl vm disk attach "$ID" "$WORK/disks/closed.raw,id=closed" 2>&1) || rc=$?
if [ $rc -ne 0 ] && grep -q "error: FAILED_PRECONDITION:" <<<"$out" \
  && grep -q "disk.path: user nobody (uid $UID_N) cannot read and write '$WORK/disks/closed.raw'" <<<"$out"; then
  pass "a disk nobody cannot open is refused: $out"
else
  fail "attach of an unreadable disk: rc=$rc: $out"
fi
ctl vm get "$ID" -o json | grep -q '"closed"' && fail "the refused disk is in the spec" \
  || pass "the refused disk is not in the spec"
[ "$(stat -c '%U %a' "$WORK/disks/closed.raw")" = "root 600" ] && pass "the refused file was not given away" \
  || fail "refused file: $(stat -c '%U %a' "$WORK/disks/closed.raw")"
ctl vm disk attach "$ID" "$WORK/disks/open.raw,id=open" >/dev/null && ctl vm get "$ID" -o json | grep -q '"open"' \
  && pass "a disk nobody can open is plugged and stored" || fail "attach of a readable disk"
ctl vm disk detach "$ID" open && pass "and detached" || fail "detach of the readable disk"
[ "$(stat -c '%U %a' "$WORK/disks/open.raw")" = "root 666" ] && pass "the plugged file kept its owner" \
  || fail "plugged file: $(stat -c '%U %a' "$WORK/disks/open.raw")"

# --- adoption of nobody's qemu after a daemon crash ---
stop_daemon KILL
start_daemon --qemu-user nobody
ctl vm get "$ID" | grep -qi running && pass "VM running after feosd restart" || fail "after restart: $(ctl vm get "$ID")"
ctl vm shutdown "$ID"
ctl vm events "$ID" --until-state stopped --wait 90 >/dev/null && pass "adopted VM powered off" || fail "adopted VM not stopped"
[ "$(stat -c '%U:%G %a' "$RUNDIR")" = "root:root 755" ] && pass "runtime dir back to root:root 755" \
  || fail "runtime dir after exit: $(stat -c '%U:%G %a' "$RUNDIR")"
ctl vm delete "$ID"

# --- a kernel nobody cannot read ---
mkdir -m 0700 "$WORK/secret"
cp "$GUEST/vmlinuz" "$WORK/secret/vmlinuz"
ID2=$(ctl vm create --kernel "$WORK/secret/vmlinuz" --initramfs "$GUEST/initramfs.cpio" --memory 256)
rc=0
out=$(ctl vm start "$ID2" 2>&1) || rc=$?
if [ $rc -ne 0 ] && grep -q "error: FAILED_PRECONDITION:" <<<"$out" \
  && grep -q "boot.kernel: user nobody (uid $UID_N) cannot read '$WORK/secret/vmlinuz'" <<<"$out"; then
  pass "unreadable kernel refused: $out"
else
  fail "start with an unreadable kernel: rc=$rc: $out"
fi
[ "$(stat -c '%U:%G %a' "$STATE/vms/$ID2")" = "root:root 755" ] && pass "runtime dir given back after the refused start" \
  || fail "runtime dir after refused start: $(stat -c '%U:%G %a' "$STATE/vms/$ID2")"
ctl vm delete "$ID2"
finish
