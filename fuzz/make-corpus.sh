#!/usr/bin/env bash
# Regenerates the seeds that are derived from other files of the repository:
#   corpus/sysfs_attributes/  each captured function of tests/fixtures/sysfs/h100-guest in the
#                             fuzzer's "=name" format, plus a synthetic H200 in an IOMMU group
#   corpus/pci_resource/      the captured `resource` files
#   corpus/config_space/      the captured `config` files
#   corpus/create_vm_request/ seeds/create_vm_request/*.txtpb encoded with protoc --encode
#   corpus/image_header/      the first 4 KiB of images qemu-img creates: qcow2 v2 and v3, with a
#                             backing file, an external data file, a bitmap, LUKS encryption, and
#                             VMDK (sparse and descriptor), VDI, VHDX, VPC, QED
# The other corpora (pci_address, qmp_reply, device_policy, image_reference, image_manifest) are
# written by hand or captured, and kept as they are. Needs protoc (Debian: protobuf-compiler) and
# qemu-img (qemu-utils). Run from anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
capture=$root/tests/fixtures/sysfs/h100-guest

mkdir -p "$here/corpus/sysfs_attributes" "$here/corpus/pci_resource" "$here/corpus/config_space" \
  "$here/corpus/create_vm_request"

# Attributes PciSysfs reads (the capture holds more; they are left out to keep seeds small).
attrs="vendor device class subsystem_vendor subsystem_device revision numa_node enable boot_vga
reset_method driver_override current_link_speed current_link_width max_link_speed max_link_width
resource"
for dir in "$capture"/*/; do
  bdf=$(basename "$dir")
  name=${bdf//:/_}
  out="$here/corpus/sysfs_attributes/$name"
  : >"$out"
  for a in $attrs; do
    [ -f "$dir/$a" ] || continue
    printf '=%s\n' "$a" >>"$out"
    cat "$dir/$a" >>"$out"
  done
  for link in driver iommu_group; do
    [ -f "$dir/$link.link" ] || continue
    printf '=%s\n' "$link" >>"$out"
    cat "$dir/$link.link" >>"$out"
    [ -z "$(tail -c1 "$dir/$link.link")" ] || echo >>"$out"
  done
  cp "$dir/resource" "$here/corpus/pci_resource/$name"
  cp "$dir/config" "$here/corpus/config_space/$name"
done

# An HGX H200 GPU alone in IOMMU group 15 (the published topology in tests/fixtures/README.md),
# bound to vfio-pci, on NUMA node 0.
cat >"$here/corpus/sysfs_attributes/h200_group15" <<'SEED'
=vendor
0x10de
=device
0x2335
=class
0x030200
=subsystem_vendor
0x10de
=subsystem_device
0x18be
=revision
0xa1
=numa_node
0
=enable
0
=reset_method
flr bus
=driver_override
vfio-pci
=current_link_speed
2.5 GT/s PCIe
=current_link_width
16
=max_link_speed
32.0 GT/s PCIe
=max_link_width
16
=resource
0x00000000e2000000 0x00000000e2ffffff 0x0000000000040200
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000220000000000 0x0000223fffffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000224000000000 0x0000224001ffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x00000000e3000000 0x00000000e307ffff 0x0000000000046200
=driver
../../../../bus/pci/drivers/vfio-pci
=iommu_group
../../../../kernel/iommu_groups/15
=@group
0000:00:06.0
=@devices
0000:00:00.0
0000:00:06.0
0000:00:06.1
SEED

for txt in "$here"/seeds/create_vm_request/*.txtpb; do
  grep -v '^#' "$txt" |
    protoc -I "$root/proto" --encode=feos.vm.vmm.api.v1.CreateVmRequest \
      feos/vm/vmm/api/v1/vm.proto >"$here/corpus/create_vm_request/$(basename "$txt" .txtpb).bin"
done
# Images in a fixed scratch directory: the data file names they record are the same on every run.
scratch=/tmp/feos-image-seeds
rm -rf "$scratch"
mkdir -p "$scratch" "$here/corpus/image_header"
image() {  # image <seed name> <qemu-img create arguments...>
  local name=$1
  shift
  qemu-img create -q "$@" "$scratch/$name" 1M
  head -c 4096 "$scratch/$name" >"$here/corpus/image_header/$name"
}
image qcow2_v2 -f qcow2 -o compat=0.10
image qcow2_v3 -f qcow2
image qcow2_v3_features -f qcow2 -o lazy_refcounts=on,extended_l2=on,compression_type=zstd
qemu-img create -q -f raw "$scratch/base.raw" 1M
image qcow2_backing_raw -f qcow2 -b "$scratch/base.raw" -F raw
image qcow2_v2_backing_qcow2 -f qcow2 -o compat=0.10 -b qcow2_v3 -F qcow2
image qcow2_data_file -f qcow2 -o data_file="$scratch/vm.data"
image qcow2_data_file_raw -f qcow2 -o data_file="$scratch/raw.data",data_file_raw=on
image qcow2_luks --object secret,id=sec0,data=seed -f qcow2 \
  -o encrypt.format=luks,encrypt.key-secret=sec0
qemu-img create -q -f qcow2 "$scratch/qcow2_bitmap" 1M
qemu-img bitmap --add "$scratch/qcow2_bitmap" b0
head -c 4096 "$scratch/qcow2_bitmap" >"$here/corpus/image_header/qcow2_bitmap"
image vmdk_sparse -f vmdk
image vmdk_descriptor -f vmdk -o subformat=monolithicFlat
for format in vdi vhdx vpc qed; do image "$format" -f "$format"; done
rm -rf "$scratch"

# Functions with identical files (the capture's virtio devices) need one seed, not five.
for d in sysfs_attributes pci_resource config_space; do
  (cd "$here/corpus/$d" && md5sum * | sort | awk 'seen[$1]++ {print $2}' | xargs -r rm --)
done
echo "make-corpus: $(find "$here/corpus" -type f | wc -l) seed files under $here/corpus"
