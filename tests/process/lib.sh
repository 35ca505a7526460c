# Helpers for process-level tests: a real feosd on a private socket and state dir, driven by the
# real feosctl. Source it; set BIN (build/bin) first. Every test gets its own temp dir, and the
# EXIT trap stops the daemon and any qemu it started, so a failing test leaves nothing running.
set -euo pipefail

WORK=$(mktemp -d /tmp/feosd-test.XXXXXX)
SOCK=$WORK/feosd.sock
STATE=$WORK/state
DAEMON_PID=
FAILS=0

log() { echo "[$(date +%H:%M:%S.%3N)] $*"; }
pass() { log "PASS: $*"; }
fail() { log "FAIL: $*"; FAILS=$((FAILS + 1)); }

# start_daemon [FEOSD ARGS...]: returns once the daemon answers (recovery may take a while: up to
# 60 s), or fails with the log's tail.
start_daemon() {
  "$BIN/feosd" --socket "$SOCK" --state-dir "$STATE" --accel tcg "$@" >>"$WORK/feosd.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 1 1200); do
    [ -S "$SOCK" ] && ctl vm list >/dev/null 2>&1 && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "feosd did not come up; log:"; tail -20 "$WORK/feosd.log"; return 1
}

stop_daemon() {  # $1: signal (default TERM)
  [ -n "$DAEMON_PID" ] || return 0
  kill -"${1:-TERM}" "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=
}

ctl() { "$BIN/feosctl" --socket "$SOCK" "$@"; }

# expect_error CODE COMMAND...: the feosctl command must fail and print that gRPC code.
expect_error() {
  local code=$1; shift
  local out rc=0
  out=$(ctl "$@" 2>&1) || rc=$?
  if [ $rc -ne 0 ] && grep -q "error: $code:" <<<"$out"; then
    pass "'$*' -> $code ($out)"
  else
    fail "'$*' expected $code, got rc=$rc: $out"
  fi
}

# The qemu processes this test's daemon started (their argv names our state dir).
test_qemu_pids() { pgrep -f -- "$STATE/" || true; }

cleanup() {
  stop_daemon KILL
  for pid in $(test_qemu_pids); do kill -9 "$pid" 2>/dev/null || true; done
  if [ "$FAILS" -ne 0 ] || [ -n "${KEEP_WORK:-}" ]; then
    echo "--- feosd log (tail) ---"; tail -40 "$WORK/feosd.log" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

finish() {
  if [ "$FAILS" -ne 0 ]; then log "$FAILS check(s) failed"; exit 1; fi
  log "all checks passed"
}

# use_guest DIR: GUEST_ARGS becomes the feosctl vm create arguments that boot the tiny test guest
# in DIR ("${GUEST_ARGS[@]}"); by default the one FEOS_TEST_GUEST_DIR names.
use_guest() {
  GUEST_ARGS=(--kernel "$1/vmlinuz" --initramfs "$1/initramfs.cpio" --cmdline "console=ttyS0 panic=-1" --memory 256)
}
use_guest "${FEOS_TEST_GUEST_DIR:-}"
