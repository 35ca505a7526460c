#!/bin/bash
# Copies kernel modules and everything they depend on, in load order, from an unpacked Debian
# kernel (KROOT, depmod already run) into DEST, keeping their /lib/modules/... paths, and appends
# those paths to ORDER_FILE (one per line, dependencies first, no duplicates).
# Shared by tests/guest/build-guest.sh and tests/e2e/setup.sh.
# Usage: copy-kernel-modules.sh KROOT KERNEL_VERSION DEST ORDER_FILE MODULE...
# Exit 1 when none of MODULE resolves to a module file.
set -euo pipefail
if [ $# -lt 5 ]; then echo "usage: $0 KROOT KERNEL_VERSION DEST ORDER_FILE MODULE..." >&2; exit 2; fi
kroot=$1 kv=$2 dest=$3 order=$4
shift 4
: > "$order"
for m in "$@"; do
  modprobe -d "$kroot" -S "$kv" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r path; do
  rel=${path#"$kroot"}
  mkdir -p "$dest$(dirname "$rel")"
  cp "$path" "$dest$rel"
  echo "$rel" >> "$order"
done
[ -s "$order" ] || { echo "copy-kernel-modules: no modules found for: $*" >&2; exit 1; }
