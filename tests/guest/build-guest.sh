#!/bin/bash
# Builds the tiny test guest that feosd's process tests boot under qemu (TCG is enough):
#   OUTDIR/vmlinuz         a Debian amd64 kernel (fetched with `apt-get download`, unpacked with
#                          `dpkg -x` under OUTDIR/cache; never installed as this machine's kernel)
#   OUTDIR/initramfs.cpio  busybox-static + the ACPI button and evdev modules + tests/guest/init.sh
#                          (uncompressed newc cpio)
# Boot it with: -kernel OUTDIR/vmlinuz -initrd OUTDIR/initramfs.cpio -append "console=ttyS0"
# Idempotent: downloads are cached in OUTDIR/cache, and a rerun with unchanged inputs does nothing
# (it does not even ask apt).
# Needs: apt-get, dpkg, busybox-static (/bin/busybox), cpio, kmod (modprobe, depmod).
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 OUTDIR" >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
CACHE=$OUT/cache
mkdir -p "$CACHE"

BUSYBOX=/bin/busybox
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked'; then
  echo "build-guest: $BUSYBOX is missing or not static (install busybox-static)" >&2; exit 1
fi
for tool in cpio modprobe depmod dpkg; do
  command -v $tool >/dev/null || { echo "build-guest: $tool not found" >&2; exit 1; }
done

# Up to date when this script, init.sh and busybox are unchanged since the last build. The kernel
# is not re-checked against apt (no network, instant reruns): delete OUTDIR for a newer one.
STAMP="$(sha256sum "$0" "$HERE/init.sh" "$BUSYBOX" | awk '{print $1}' | tr '\n' ' ')"
if [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initramfs.cpio" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "build-guest: $OUT up to date"; exit 0
fi

# The kernel package the metapackage points at now; fall back to a cached one when apt cannot say.
PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}' || true)
if [ -z "$PKG" ]; then
  PKG=$(ls "$CACHE" 2>/dev/null | sed -n 's/^\(linux-image-[0-9].*-amd64\)_.*\.deb$/\1/p' | head -1)
fi
[ -n "$PKG" ] || { echo "build-guest: cannot find a linux-image-*-amd64 package" >&2; exit 1; }
DEB=$(ls "$CACHE/${PKG}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$DEB" ]; then
  echo "build-guest: downloading $PKG"
  (cd "$CACHE" && apt-get download "$PKG")
  DEB=$(ls "$CACHE/${PKG}"_*.deb | head -1)
fi
# Only the kernel image and the few modules the guest loads are kept from the package (the
# unpacked package is ~400 MB): button = ACPI power button -> input events, evdev = the
# /dev/input/event* device to read them from.
MODULES="button evdev"
KCACHE=$CACHE/kernel-$PKG
if [ "$(cat "$KCACHE/.modules" 2>/dev/null)" != "$MODULES" ]; then
  KROOT=$CACHE/unpacked
  rm -rf "$KROOT" "$KCACHE"
  dpkg -x "$DEB" "$KROOT"
  KV=$(ls "$KROOT/lib/modules" | head -1)
  depmod -b "$KROOT" "$KV"
  mkdir -p "$KCACHE/modules"
  cp "$KROOT/boot/vmlinuz-$KV" "$KCACHE/vmlinuz"
  echo "$KV" > "$KCACHE/version"
  # shellcheck disable=SC2086  # MODULES is a word list
  "$HERE/../lib/copy-kernel-modules.sh" "$KROOT" "$KV" "$KCACHE/modules" "$KCACHE/modules.order" $MODULES
  rm -rf "$KROOT"
  echo "$MODULES" > "$KCACHE/.modules"
fi
KV=$(cat "$KCACHE/version")

STAGE=$CACHE/initramfs-root
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,dev,proc,sys,etc,tmp}
cp "$BUSYBOX" "$STAGE/bin/busybox"
ln -s busybox "$STAGE/bin/sh"
cp -a "$KCACHE/modules/." "$STAGE/"
cp "$KCACHE/modules.order" "$STAGE/etc/modules.order"
cp "$HERE/init.sh" "$STAGE/init"
chmod 755 "$STAGE/init"
(cd "$STAGE" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$OUT/initramfs.cpio.tmp"
mv "$OUT/initramfs.cpio.tmp" "$OUT/initramfs.cpio"
cp "$KCACHE/vmlinuz" "$OUT/vmlinuz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "$STAMP" > "$OUT/.stamp"
echo "build-guest: $OUT/vmlinuz (kernel $KV), $OUT/initramfs.cpio ($(du -h "$OUT/initramfs.cpio" | cut -f1), $(wc -l < "$STAGE/etc/modules.order") modules)"
