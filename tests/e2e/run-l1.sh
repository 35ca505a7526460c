#!/bin/bash
# Boots L1, the emulated GPU host: qemu TCG, q35 with an Intel vIOMMU (interrupt remapping,
# caching mode so L1's vfio can map guest memory), Debian's kernel with intel_iommu=on, and the
# cards of the end-to-end suite. L1's serial console is this script's stdout.
#
#   00:01.0      VGA (1234:1111)           the host's own boot display (like a server's BMC VGA)
#   00:02.0 rp1  01:00.0 VGA (1234:1111)   card A, function 0  } one IOMMU group
#                01:00.1 HDA (8086:293e)   card A, function 1  }
#   00:03.0 rp2  02:00.0 bochs-display     card B (1234:1111, class 0380), own group
#   00:04.0 rp3  03:00.0 e1000e (8086:10d3) a NIC, own group
#   00:05.0 pci-bridge (conventional PCI)  04:01.0 bochs-display } one group with the bridge:
#                                          04:02.0 e1000e        } not viable for one device
#   00:08.0 rp4  05:00.0 virtio-gpu-pci (1af4:1050, class 0380)  } card C, one group: a display
#                05:00.1 pci-testdev (1b36:0005)                 } function and a datacenter-
#                        one 64-bit prefetchable BAR of E2E_BIG_BAR_GIB  } sized BAR (no driver)
# Topology (two NUMA nodes, CPU 0 and half the memory each; a PCIe switch):
#   00:09.0 pxb-pcie, NUMA node 0, root bus 0x40
#     40:00.0 rp5  41:00.0 x3130 switch, upstream port
#                    42:00.0 downstream  43:00.0 bochs-display  card E  } a GPU pair under one
#                    42:01.0 downstream  44:00.0 bochs-display  card F  } switch, a group each
#                    42:02.0 downstream  45:00.0 e1000e         a NIC beside them (as on HGX)
#   00:0a.0 pxb-pcie, NUMA node 1, root bus 0x80
#     80:00.0 rp6  81:00.0 bochs-display  card D, the one GPU on node 1
#   (the devices on pcie.0 have no NUMA node: QEMU gives the main root bus no proximity domain)
# plus two virtio-9p devices: L0's / read-only (tag hostroot) and RESULTS writable (tag results).
#
# Usage: run-l1.sh OUTDIR RESULTS PAYLOAD [KEY=VALUE...]
#   OUTDIR   prepared by setup.sh; RESULTS an existing directory; PAYLOAD a script on L0's
#   filesystem run inside L1 (see init.sh); KEY=VALUE pairs go onto L1's kernel command line.
# Environment: E2E_L1_TIMEOUT (seconds, default 2700), E2E_L1_MEMORY (default 4G),
#   E2E_L1_EXTRA_QEMU (more qemu arguments), E2E_BIG_BAR_GIB (card C's BAR in GiB, a power of
#   two from 8 to 128; default 16: see tests/e2e/README.md for the time it costs).
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 OUTDIR RESULTS PAYLOAD [KEY=VALUE...]" >&2; exit 2; fi
OUT=$(cd "$1" && pwd)
RESULTS=$(cd "$2" && pwd)
PAYLOAD=$3
shift 3
# shellcheck source=/dev/null
. "$OUT/env"
for p in "$OUT" "$RESULTS" "$PAYLOAD" "$@"; do
  case $p in *[[:space:]]*) echo "run-l1: '$p' contains white space (kernel command line)" >&2; exit 2 ;; esac
done
TIMEOUT=${E2E_L1_TIMEOUT:-2700}

# L1's own firmware (SeaBIOS) must place card C's BAR, so L1's 64-bit PCI hole and address bits
# must reach it. Card C's function 0 is virtio-gpu-pci because its only prefetchable BAR is
# 64-bit too (VGA and bochs-display have a 32-bit one, which would force the root port's whole
# prefetchable window below 4 GiB, where such a BAR cannot fit). With BAR = E2E_BIG_BAR_GIB:
#  - rp4's prefetchable window: BAR + virtio-gpu's 16 KiB, rounded up to a multiple of its
#    largest BAR (SeaBIOS does so, as feosd's mmio_layout does for the guests): 2 * BAR;
#  - SeaBIOS puts the 64-bit windows after the RAM above 4 GiB (2 GiB of L1's 4 GiB, so from
#    6 GiB), the largest first at its alignment (BAR): rp4's window is [BAR, 3 * BAR), the small
#    64-bit BARs (virtio-9p, virtio-gpu) follow (measured, 64 GiB: the test BAR at 64 GiB);
#  - q35's hole (default 32 GiB) is sized 4 * BAR. QEMU announces it to L1's kernel (ACPI _CRS)
#    from the lowest 64-bit BAR placed, so [BAR, 5 * BAR): it holds every 64-bit BAR, with room;
#  - its end needs bits(5 * BAR - 1) address bits: 39 for 64 GiB, 40 for 128 GiB. QEMU refuses
#    to start when the hole ends beyond 2^phys-bits. 40 is TCG's default (and feosd's floor).
#    6 GiB + a hole past 1012 GiB would make QEMU move an AMD guest's RAM (TCG's -cpu max is AMD)
#    to 1 TiB, hence the bound of 128 GiB.
BIG_BAR_GIB=${E2E_BIG_BAR_GIB:-16}
# Two NUMA nodes, half the memory each (E2E_L1_MEMORY in MiB or with a G suffix).
MEMORY=${E2E_L1_MEMORY:-4G}
case $MEMORY in *G) MEMORY_MIB=$((${MEMORY%G} * 1024)) ;; *M) MEMORY_MIB=${MEMORY%M} ;; *) MEMORY_MIB=$MEMORY ;; esac
NODE_MIB=$((MEMORY_MIB / 2))
case $BIG_BAR_GIB in 8|16|32|64|128) ;; *) echo "run-l1: E2E_BIG_BAR_GIB must be 8, 16, 32, 64 or 128" >&2; exit 2 ;; esac
HOLE64_GIB=$((4 * BIG_BAR_GIB))
PHYS_BITS=40
while [ $((5 * BIG_BAR_GIB * (1 << 30) - 1)) -ge $((1 << PHYS_BITS)) ]; do PHYS_BITS=$((PHYS_BITS + 1)); done
# shellcheck disable=SC2086
exec timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg,thread=multi,tb-size=512 -cpu max,phys-bits=$PHYS_BITS -smp 2 -m "$((2 * NODE_MIB))M" \
  -object memory-backend-ram,id=mem0,size=${NODE_MIB}M -numa node,nodeid=0,cpus=0,memdev=mem0 \
  -object memory-backend-ram,id=mem1,size=${NODE_MIB}M -numa node,nodeid=1,cpus=1,memdev=mem1 \
  -machine q35,kernel-irqchip=split -global q35-pcihost.pci-hole64-size=${HOLE64_GIB}G \
  -device intel-iommu,intremap=on,caching-mode=on \
  -nodefaults -no-user-config -display none -serial stdio -monitor none -no-reboot \
  -kernel "$VMLINUZ" -initrd "$INITRD_L1" \
  -append "console=ttyS0 intel_iommu=on panic=-1 mitigations=off quiet role=l1 e2e_out=$OUT e2e_results=$RESULTS e2e_payload=$PAYLOAD $*" \
  -fsdev local,id=fs0,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=fs0,mount_tag=hostroot,bus=pcie.0,addr=0x6 \
  -fsdev "local,id=fs1,path=$RESULTS,security_model=none,multidevs=remap" \
  -device virtio-9p-pci,fsdev=fs1,mount_tag=results,bus=pcie.0,addr=0x7 \
  -device VGA,bus=pcie.0,addr=0x1 \
  -device pcie-root-port,id=rp1,bus=pcie.0,addr=0x2,chassis=1,slot=1 \
  -device pcie-root-port,id=rp2,bus=pcie.0,addr=0x3,chassis=2,slot=2 \
  -device pcie-root-port,id=rp3,bus=pcie.0,addr=0x4,chassis=3,slot=3 \
  -device pci-bridge,id=pb1,bus=pcie.0,addr=0x5,chassis_nr=4,shpc=off \
  -device pcie-root-port,id=rp4,bus=pcie.0,addr=0x8,chassis=5,slot=5 \
  -device VGA,bus=rp1,addr=0.0,multifunction=on \
  -device ich9-intel-hda,id=hda0,bus=rp1,addr=0.1 -device hda-output,bus=hda0.0,audiodev=snd0 \
  -audiodev none,id=snd0 \
  -device bochs-display,bus=rp2,addr=0.0 \
  -device e1000e,bus=rp3,addr=0.0,netdev=n0 -netdev user,id=n0,restrict=on \
  -device bochs-display,bus=pb1,addr=0x1 \
  -device e1000e,bus=pb1,addr=0x2,netdev=n1 -netdev user,id=n1,restrict=on \
  -device virtio-gpu-pci,bus=rp4,addr=0.0,multifunction=on \
  -device pci-testdev,bus=rp4,addr=0.1,membar=${BIG_BAR_GIB}G \
  -device pxb-pcie,id=pxb0,bus_nr=64,numa_node=0,bus=pcie.0,addr=0x9 \
  -device pcie-root-port,id=rp5,bus=pxb0,chassis=6,slot=6 \
  -device x3130-upstream,id=sw0,bus=rp5 \
  -device xio3130-downstream,id=sw0p0,bus=sw0,addr=0x0,chassis=8,slot=8 \
  -device xio3130-downstream,id=sw0p1,bus=sw0,addr=0x1,chassis=9,slot=9 \
  -device xio3130-downstream,id=sw0p2,bus=sw0,addr=0x2,chassis=10,slot=10 \
  -device bochs-display,bus=sw0p0 -device bochs-display,bus=sw0p1 \
  -device e1000e,bus=sw0p2,netdev=n2 -netdev user,id=n2,restrict=on \
  -device pxb-pcie,id=pxb1,bus_nr=128,numa_node=1,bus=pcie.0,addr=0xa \
  -device pcie-root-port,id=rp6,bus=pxb1,chassis=7,slot=7 \
  -device bochs-display,bus=rp6 \
  ${E2E_L1_EXTRA_QEMU:-} < /dev/null
