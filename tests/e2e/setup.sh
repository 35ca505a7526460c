#!/bin/bash
# Prepares everything the end-to-end GPU host (tests/e2e/run-l1.sh) boots, under OUTDIR:
#   OUTDIR/cache/<linux-image>.deb   Debian's kernel package (`apt-get download`; never installed
#                                    as this machine's kernel)
#   OUTDIR/kroot/                    that package unpacked with `dpkg -x`, depmod run on it
#   OUTDIR/vmlinuz                   the compressed kernel: L1 (the emulated GPU host) boots it
#   OUTDIR/vmlinux                   the same kernel uncompressed (the xz stream inside vmlinuz),
#                                    bootable via PVH: L2 guests skip ~35 s of decompression
#   OUTDIR/initrd-l1.cpio            busybox + virtio/9p modules + tests/e2e/init.sh (role=l1)
#   OUTDIR/initrd-l2.cpio            busybox + guest drivers (bochs, snd_hda_codec_generic,
#                                    snd_hda_intel, e1000e, virtio_pci, power button) + init.sh
#                                    (role=l2)
#   (module signatures cut off; modules listed per group in etc/modules.GROUP)
#   OUTDIR/env                       KV=, KROOT=, ... for the other scripts (shell syntax)
# Idempotent: a rerun with unchanged inputs does nothing and takes well under a second.
# Needs: apt-get, dpkg, busybox-static (/bin/busybox), cpio, kmod (modprobe, depmod), python3
# (lzma module), file. Usage: setup.sh OUTDIR
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 OUTDIR" >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
CACHE=$OUT/cache
mkdir -p "$CACHE"
say() { echo "e2e-setup: $*"; }

BUSYBOX=/bin/busybox
file -L "$BUSYBOX" 2>/dev/null | grep -c 'statically linked' >/dev/null \
  || { say "$BUSYBOX is missing or not static (install busybox-static)" >&2; exit 1; }
for tool in cpio modprobe depmod dpkg apt-get python3 qemu-system-x86_64; do
  command -v $tool >/dev/null || { say "$tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

# --- kernel package: the one linux-image-amd64 points at now, else the one already cached ---
PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}' || true)
if [ -z "$PKG" ] || ! ls "$CACHE"/"${PKG}"_*.deb >/dev/null 2>&1; then
  cached=$(ls "$CACHE" 2>/dev/null | sed -n 's/^\(linux-image-[0-9].*-amd64\)_.*\.deb$/\1/p' | head -1)
  # Reuse a package another harness of this build already fetched (tests/guest/build-guest.sh).
  if [ -n "$PKG" ] && [ -z "$cached" ]; then
    for other in "$OUT"/../guest/cache/"${PKG}"_*.deb; do
      [ -f "$other" ] && { cp "$other" "$CACHE/"; say "reusing $other"; }
    done
  fi
  [ -n "$PKG" ] || PKG=$cached
fi
[ -n "$PKG" ] || { say "cannot find a linux-image-*-amd64 package (apt-get update?)" >&2; exit 1; }
DEB=$(ls "$CACHE"/"${PKG}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$DEB" ]; then
  say "downloading $PKG"
  (cd "$CACHE" && apt-get download "$PKG")
  DEB=$(ls "$CACHE"/"${PKG}"_*.deb | head -1)
fi
KROOT=$OUT/kroot
if [ "$(cat "$KROOT/.deb" 2>/dev/null)" != "$(basename "$DEB")" ]; then
  say "unpacking $(basename "$DEB")"
  rm -rf "$KROOT" "$KROOT.tmp"
  dpkg -x "$DEB" "$KROOT.tmp"
  basename "$DEB" > "$KROOT.tmp/.deb"
  mv "$KROOT.tmp" "$KROOT"
fi
KV=$(ls "$KROOT/lib/modules" | head -1)
[ -f "$KROOT/lib/modules/$KV/modules.dep" ] || depmod -b "$KROOT" "$KV"
ln -sfn "kroot/boot/vmlinuz-$KV" "$OUT/vmlinuz"

# --- uncompressed vmlinux (an ELF with a PVH note: qemu -kernel boots it directly) ---
if [ ! -f "$OUT/vmlinux" ] || [ "$(cat "$OUT/.vmlinux" 2>/dev/null)" != "$KV" ]; then
  say "extracting vmlinux from vmlinuz-$KV"
  python3 - "$KROOT/boot/vmlinuz-$KV" "$OUT/vmlinux.tmp" <<'PY'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
start = data.find(b'\xfd7zXZ\x00')
if start < 0:
    sys.exit("no xz stream in " + sys.argv[1])
out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
if out[:4] != b'\x7fELF':
    sys.exit("the xz stream of " + sys.argv[1] + " is not an ELF image")
open(sys.argv[2], 'wb').write(out)
PY
  mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
  echo "$KV" > "$OUT/.vmlinux"
fi

# --- initramfs images (uncompressed newc: nothing to decompress under nested emulation) ---
# build NAME GROUP=MODULE,MODULE... ...: busybox, init.sh as /init, and per group the modules
# with their dependencies in load order (etc/modules.GROUP, read by init.sh). Module signatures
# are cut off: the guests do not enforce them, and checking each one (sha256 + RSA) costs
# seconds per module under nested emulation.
build() {
  local name=$1; shift
  local stamp st spec group m
  stamp="$KV $* $(sha256sum "$HERE/init.sh" "$BUSYBOX" "$0" | awk '{print $1}' | tr '\n' ' ')"
  if [ -f "$OUT/initrd-$name.cpio" ] && [ "$(cat "$OUT/.initrd-$name" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  st=$CACHE/initrd-$name-root
  rm -rf "$st"
  mkdir -p "$st"/{bin,dev,proc,sys,etc,mnt,host,l0,share,tmp,run}
  cp "$BUSYBOX" "$st/bin/busybox"
  ln -s busybox "$st/bin/sh"
  for spec in "$@"; do
    group=${spec%%=*}
    # shellcheck disable=SC2086  # the module list is a word list
    "$HERE/../lib/copy-kernel-modules.sh" "$KROOT" "$KV" "$st" "$st/etc/modules.$group" ${spec#*=}
  done
  python3 - "$st" <<'PY'
import os, sys
MAGIC = b"~Module signature appended~\n"
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if not f.endswith(".ko"):
            continue
        path = os.path.join(root, f)
        data = open(path, "rb").read()
        if data.endswith(MAGIC):
            # struct module_signature (12 bytes, sig_len big-endian at 8..12) precedes the magic
            info = data[-len(MAGIC) - 12:-len(MAGIC)]
            sig_len = int.from_bytes(info[8:12], "big")
            open(path, "wb").write(data[:len(data) - len(MAGIC) - 12 - sig_len])
PY
  cp "$HERE/init.sh" "$st/init"
  chmod 755 "$st/init"
  (cd "$st" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$OUT/initrd-$name.cpio.tmp"
  mv "$OUT/initrd-$name.cpio.tmp" "$OUT/initrd-$name.cpio"
  echo "$stamp" > "$OUT/.initrd-$name"
  say "$OUT/initrd-$name.cpio: $(du -h "$OUT/initrd-$name.cpio" | cut -f1), $(cat "$st"/etc/modules.* | wc -l) modules"
}
build l1 base="virtio_pci 9pnet_virtio 9p"
# L2 loads a group only when it has a device for it. The HDA codec driver goes before
# snd_hda_intel: its async probe otherwise races the codec module. button + evdev: the ACPI power
# button, so `feosctl vm shutdown` can stop the guest. virtio_pci: card C's virtio-gpu function
# (its probe reads the virtio registers through a 64-bit BAR above 4 GiB).
build l2 base="button evdev" display=bochs audio="snd_hda_codec_generic snd_hda_intel" net=e1000e \
  virtio=virtio_pci

cat > "$OUT/env.tmp" <<EOF
KV=$KV
KROOT=$KROOT
VMLINUZ=$OUT/vmlinuz
VMLINUX=$OUT/vmlinux
INITRD_L1=$OUT/initrd-l1.cpio
INITRD_L2=$OUT/initrd-l2.cpio
EOF
mv "$OUT/env.tmp" "$OUT/env"
say "ready in $OUT (kernel $KV)"
