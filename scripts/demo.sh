#!/usr/bin/env bash
# The main job on a machine without a GPU host: build, start feosd on a private socket, create and
# boot a VM from the tiny test guest, show its console, pause/resume, shut it down over ACPI,
# delete it. Everything runs under a temp dir and is cleaned up at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
step() { printf '\n== %s\n' "$*"; }

step "Installing missing packages"
scripts/install-deps.sh
step "Building feosd and feosctl"
scripts/build.sh >/dev/null
step "Building the test guest (Debian kernel + busybox initramfs; cached after the first run)"
tests/guest/build-guest.sh build/guest

WORK=$(mktemp -d /tmp/feosd-demo.XXXXXX)
SOCK=$WORK/feosd.sock
ctl() { "$ROOT/build/bin/feosctl" --socket "$SOCK" "$@"; }
DAEMON=
cleanup() {
  [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
  pkill -9 -f -- "$WORK/state/" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

accel=tcg; [ -w /dev/kvm ] && accel=kvm
step "Starting feosd (socket $SOCK, accel $accel)"
build/bin/feosd --socket "$SOCK" --state-dir "$WORK/state" --accel "$accel" 2>"$WORK/feosd.log" &
DAEMON=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done

step "feosctl vm create --kernel ... --initramfs ... --memory 256 --start"
ID=$(ctl vm create --kernel build/guest/vmlinuz --initramfs build/guest/initramfs.cpio \
  --cmdline "console=ttyS0" --memory 256 --vcpus 1 --start)
echo "vm id: $ID"
ctl vm list
step "Guest console until the guest reports ready (booting under $accel)"
t0=$(date +%s)
ctl vm console "$ID" --until FEOS-TEST-GUEST-READY --wait 180
echo; echo "(guest ready after $(( $(date +%s) - t0 )) s)"
step "Pause, resume, ping"
ctl vm pause "$ID" && ctl vm get "$ID" | grep -i state
ctl vm resume "$ID" && ctl vm get "$ID" | grep -i state
ctl vm ping "$ID"
step "ACPI shutdown; waiting for the guest to power off"
ctl vm shutdown "$ID"
ctl vm events "$ID" --until-state stopped --wait 120
step "Event history"
ctl vm events "$ID" --tail 10 --no-follow
step "Delete"
ctl vm delete "$ID"
ctl vm list
step "Done: a VM was created, booted, driven and removed through feosd's gRPC API"
