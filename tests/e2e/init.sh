#!/bin/sh
# /init of both levels of the end-to-end GPU host (busybox initramfs built by setup.sh), picked
# by role= on the kernel command line.
#
# role=l1: the emulated GPU host. Mounts L0's / read-only over 9p (tag hostroot) and the writable
#   results share (tag results), puts tmpfs over the directories a host writes to, mounts
#   /proc, /sys, /dev inside, brings back the L0 paths the suite needs that the tmpfs hid, and
#   runs the payload (e2e_payload=) with bash chrooted into L0's root, so the project's own
#   binaries run with the real kernel's /sys and /dev of L1. Powers off when the payload ends.
#   Cmdline: e2e_payload= e2e_results= e2e_src= e2e_bin= e2e_out= e2e_cases=
# role=l2: a guest started by feosd inside L1. Prints the PCI functions it sees (ids, class,
#   driver) before and after loading its drivers, their BARs (start, size), the driver evidence
#   (DRM cards, EDID read from the cards, sound codecs, interrupt counts), then E2E-L2-READY, and
#   stays up answering console commands ("pci TAG": the same dump again); the ACPI power button
#   powers it off.
#   Output lines start with E2E-L2 so the suite can parse them.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
arg() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
up() { cut -d' ' -f1 /proc/uptime; }
# loadmods GROUP: the modules setup.sh put into etc/modules.GROUP, dependencies first.
loadmods() { while read -r m; do insmod "$m" 2>&1 | grep -v 'File exists'; done < "/etc/modules.$1"; }
# has_class PATTERN: a PCI function with a class matching PATTERN (0x03*) exists.
has_class() {
  for d in /sys/bus/pci/devices/*; do
    # shellcheck disable=SC2254 # $1 is a glob pattern
    case $(cat "$d/class") in $1) return 0 ;; esac
  done
  return 1
}
# has_vendor ID: a PCI function of that vendor (0x1af4: virtio) exists.
has_vendor() { grep -qx "$1" /sys/bus/pci/devices/*/vendor; }
ROLE=$(arg role)

if [ "$ROLE" = l2 ]; then
  exec > /dev/ttyS0 2>&1 < /dev/ttyS0
  echo "E2E-L2 init start uptime=$(up)"
  # pcidump TAG: one line per PCI function: address, ids, class, driver, NUMA node; then the
  # guest's online NUMA nodes.
  pcidump() {
    for d in /sys/bus/pci/devices/*; do
      drv=-
      [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
      echo "E2E-L2-PCI $1 ${d##*/} $(cut -c3- "$d/vendor"):$(cut -c3- "$d/device") class=$(cat "$d/class") drv=$drv numa=$(cat "$d/numa_node" 2>/dev/null)"
    done
    echo "E2E-L2-NUMA $1 online=$(cat /sys/devices/system/node/online 2>/dev/null)"
  }
  # bardump TAG: one line per assigned memory or I/O BAR of every PCI function: index, start
  # and size as the guest's kernel has them (/sys/bus/pci/devices/*/resource; an unassigned BAR
  # keeps its size with start 0 and the IORESOURCE_UNSET flag 0x20000000).
  bardump() {
    for d in /sys/bus/pci/devices/*; do
      i=0
      while [ $i -lt 6 ] && read -r start end flags; do
        [ $((flags)) -ne 0 ] && echo "E2E-L2-BAR $1 ${d##*/} $(cut -c3- "$d/vendor"):$(cut -c3- "$d/device") bar=$i start=$start size=$(printf '0x%x' $((end - start + 1))) flags=$flags"
        i=$((i + 1))
      done < "$d/resource"
    done
  }
  # edid TAG: makes every DRM connector probe its device again (bochs reads the EDID from the
  # card's MMIO BAR), then prints how many EDID bytes came back: the card still answers.
  edid() {
    for c in /sys/class/drm/card*-*; do
      [ -e "$c/status" ] || continue
      echo detect > "$c/status" 2>/dev/null
      echo "E2E-L2-EDID $1 ${c##*/} bytes=$(wc -c < "$c/edid") status=$(cat "$c/status")"
    done
  }
  pcidump before
  # Only the drivers this guest has devices for: loading a module costs seconds here.
  loadmods base
  has_class '0x03*' && loadmods display
  has_class '0x0403*' && loadmods audio
  has_class '0x02*' && loadmods net
  has_vendor 0x1af4 && loadmods virtio
  # Drivers probe asynchronously: wait (up to 30 s) until every display, audio and network
  # function has a driver, then a moment for the HDA codec probe.
  i=0
  while [ $i -lt 60 ]; do
    missing=0
    for d in /sys/bus/pci/devices/*; do
      case $(cat "$d/class") in 0x03*|0x0403*|0x02*) [ -e "$d/driver" ] || missing=1 ;; esac
    done
    [ $missing = 0 ] && break
    sleep 0.5; i=$((i + 1))
  done
  sleep 1
  pcidump after
  bardump after
  echo "E2E-L2-DRM $(ls /sys/class/drm 2>/dev/null | grep -E '^card[0-9]+$' | tr '\n' ' ')"
  echo "E2E-L2-SND $(ls /dev/snd 2>/dev/null | tr '\n' ' ')"
  for c in /proc/asound/card[0-9]*/codec#*; do
    [ -e "$c" ] && echo "E2E-L2-CODEC ${c#/proc/asound/} $(grep -m1 '^Codec:' "$c")"
  done
  # Interrupts delivered to each passed-through driver (MSI through both IOMMU levels).
  grep -E 'snd_hda|bochs|e1000e|eth0' /proc/interrupts | while read -r irq rest; do
    total=0
    for n in $rest; do case $n in *[!0-9]*) break ;; *) total=$((total + n)) ;; esac; done
    echo "E2E-L2-IRQ ${irq%:} count=$total name=$(echo "$rest" | awk '{print $NF}')"
  done
  edid after
  dmesg | grep -iE 'bochs|hda|snd|drm|e1000e|error|fail|timeout|polling' | grep -v -e 'Command line' -e 'ACPI: ' \
    | tail -30 | sed 's/^/E2E-L2-DMESG /'
  # The power button (button + evdev modules) powers the guest off: `feosctl vm shutdown`.
  for e in /sys/class/input/event*; do
    [ "$(cat "$e/device/name" 2>/dev/null)" = "Power Button" ] || continue
    ( until [ "$(dd if="/dev/input/${e##*/}" bs=24 count=1 2>/dev/null | wc -c)" -gt 0 ]; do sleep 1; done
      echo "E2E-L2 power button"; poweroff -f ) &
    break
  done
  echo "E2E-L2-READY uptime=$(up)"
  # Console commands: "pci TAG" prints the PCI functions and EDID probes again, tagged, then
  # E2E-L2-END TAG; any other line is echoed as E2E-L2-ECHO:<line>.
  stty -echo 2>/dev/null
  while true; do
    while read -r cmd tag; do
      case $cmd in
        pci) pcidump "$tag"; edid "$tag"; echo "E2E-L2-END $tag" ;;
        '') ;;
        *) echo "E2E-L2-ECHO:$cmd${tag:+ $tag}" ;;
      esac
    done
    sleep 1
  done
fi

# ---- L1: the emulated GPU host ----
echo "E2E-L1 init start uptime=$(up)"
loadmods base
fatal() { echo "E2E-L1 FATAL: $*"; echo "SUMMARY passed=0 failed=1 (L1 setup: $*)"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
  || fatal "9p mount of L0's root failed"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /share || fatal "9p mount of the results share failed"
# A second view of L0's root, taken before the tmpfs mounts below hide parts of it.
mount --bind /host /l0
for d in tmp run var/tmp root; do mount -t tmpfs -o mode=0755 tmpfs "/host/$d"; done
chmod 1777 /host/tmp /host/var/tmp
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t tmpfs tmpfs /host/dev/shm 2>/dev/null
# graft PATH: make L0's PATH visible again when it lies under one of those tmpfs mounts.
graft() {
  case $1 in
    /tmp/*|/run/*|/var/tmp/*|/root/*) mkdir -p "/host$1" && mount --bind "/l0$1" "/host$1" ;;
  esac
}
RESULTS=$(arg e2e_results)
for p in "$(arg e2e_src)" "$(arg e2e_bin)" "$(arg e2e_out)" "$(dirname "$(arg e2e_payload)")"; do [ -n "$p" ] && graft "$p"; done
mkdir -p "/host$RESULTS" 2>/dev/null
mount --bind /share "/host$RESULTS" || fatal "cannot mount the results share at $RESULTS"
echo "E2E-L1 L0 root mounted uptime=$(up)"
PAYLOAD=$(arg e2e_payload)
if [ -n "$PAYLOAD" ]; then
  chroot /host /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    E2E_RESULTS="$RESULTS" E2E_SRC="$(arg e2e_src)" E2E_BIN="$(arg e2e_bin)" E2E_OUT="$(arg e2e_out)" \
    E2E_CASES="$(arg e2e_cases)" /bin/bash "$PAYLOAD" < /dev/null 2>&1
  echo "E2E-L1 payload exit=$? uptime=$(up)"
else
  echo "E2E-L1 no payload: shell"
  setsid cttyhack sh
fi
sync
poweroff -f
