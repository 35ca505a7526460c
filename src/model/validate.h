#pragma once
// The one structural check of a VM spec: every value judged against model/limits.h without
// looking at the host. vmm/ runs it before its own host checks (files, image graph, access);
// the QEMU argv builder runs it again on the spec it is given. Messages name the request field in
// the style of model/field_path.h ("config.disks[1].device_id: ...").
#include <string_view>

#include "common/error.h"
#include "model/vm.h"

namespace feos::model {

// Checks, in this order: vCPU counts (1 <= boot <= max <= kMaxVcpus); memory size
// (1..kMaxMemoryMib); at most kMaxDisks disks, kMaxNics NICs and kMaxGpus GPUs; something to boot
// (image_path, the resolved image_ref, or boot.kernel); image_path, boot.kernel and boot.initramfs
// as validate_host_path(); the kernel command line (no control characters, at most
// kMaxKernelCmdline bytes, only with a kernel); the initramfs (no ',', only with a kernel);
// ignition (at most kMaxIgnition bytes, no NUL); disk and NIC device ids (validate_device_id(),
// unique across disks and NICs); disk paths; tap names (1..kMaxTapName characters, no '/', ',',
// ':' or whitespace); MAC addresses (validate_mac(), when given); the GPUDirect choice (explicit
// cliques name GPUs of `gpus`, each once, two or more per clique, at most kMaxGpudirectCliques;
// no cliques in another mode) and the guest NUMA mode. GPU addresses are not looked at.
// image_ref itself is core's to parse (core::resolve_image_ref).
// Errors: INVALID_ARGUMENT naming the field, e.g. "config.disks[1].device_id: duplicate ...".
Status validate(const VmSpec& spec);

// A host file path from a request, before anything looks at the filesystem: absolute, at most
// kMaxHostPath bytes, no control characters, every component a plain name (no empty, "." or ".."
// component, no trailing '/'). INVALID_ARGUMENT naming `field` otherwise.
Status validate_host_path(std::string_view path, std::string_view field);

// Whether `mac` is written as a MAC address: six two-digit hex octets (either case) separated by
// ':', kMacAddressLength characters. Says nothing about which addresses a NIC may use.
bool is_mac_text(std::string_view mac);

// is_mac_text(), and an address a NIC may use: not multicast (the first octet's low bit;
// broadcast included) and not 00:00:00:00:00:00. INVALID_ARGUMENT naming `field` otherwise.
Status validate_mac(std::string_view mac, std::string_view field);

// A QEMU-compatible device id: 1..kMaxDeviceId characters, a letter first, then letters, digits,
// '-', '.', '_'; not starting with kReservedIdPrefix. INVALID_ARGUMENT naming `field` otherwise.
Status validate_device_id(std::string_view id, std::string_view field);

}  // namespace feos::model
