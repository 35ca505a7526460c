#pragma once
// Collects the facts feos-gpu-check reports: GPUs from sysfs (through the pci layer), the NVIDIA
// driver version from procfs and an nvidia-smi query.
#include <string>
#include <vector>

#include "gpu-check/report.h"
#include "pci/pci_ids.h"
#include "pci/sysfs.h"
#include "sys/filesystem.h"

namespace feos::gpucheck {

// True for display adapters that hypervisors emulate (QEMU std VGA, QXL, virtio-gpu, Cirrus,
// VMware SVGA, Hyper-V): they are listed but not counted as GPUs.
bool is_emulated_display(uint16_t vendor, uint16_t device);

// Fills report.gpus/emulated/pci_* from sysfs. `ids` may be empty (no names).
void collect_pci(const pci::PciSysfs& pci, const pci::PciIds& ids, Report& report);

// Reads <proc_root>/driver/nvidia/version. A missing file is reported, not an error.
NvidiaDriver read_nvidia_driver(const sys::Filesystem& fs, const std::string& proc_root);

// The version number in the first line of /proc/driver/nvidia/version ("NVRM version: NVIDIA
// UNIX Open Kernel Module for x86_64  580.159.04  Release Build ..."); empty if none.
std::string parse_nvidia_version(const std::string& text);

// The fields feos-gpu-check asks nvidia-smi for.
const std::vector<std::string>& nvidia_smi_fields();

// Runs `<program> --query-gpu=<fields> --format=csv,noheader` (argv, no shell, 30 s limit).
NvidiaSmi query_nvidia_smi(const std::string& program);

// Parses nvidia-smi CSV rows (", "-separated, no header) into `smi.rows`; false with smi.error
// set when a row has the wrong number of values.
bool parse_nvidia_smi_csv(const std::string& text, NvidiaSmi& smi);

}  // namespace feos::gpucheck
