#pragma once
// The taps an unprivileged qemu (QemuConfig::run_as) opens by name (-netdev tap,ifname=... at
// start, netdev_add when a NIC is hot-plugged). The kernel lets a process without CAP_NET_ADMIN
// attach only to a tap made for it (sys::TapOwner::admits()). An existing tap is the operator's,
// like a request file: feosd never changes its owner, it checks up front and says what to do.
#include <string>

#include "common/error.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "sys/permissions.h"
#include "sys/run_as.h"

namespace feos::vmm::qemu {

// What the user must reach to open any tap: <dev>/net/tun read and write (Debian's udev makes it
// 0666; a host may not), named "<field> (tap device)".
sys::AccessCheck tun_access_check(const sys::HostPaths& paths, const std::string& field);

// Whether `user` can open the existing tap `tap` (a validated interface name), the request field
// `field` naming it. Errors, each starting "<field>: ":
//  - FAILED_PRECONDITION "tap '<tap>' does not exist, and qemu, running as <user>, cannot create
//    it: create it for that user (ip tuntap add <tap> mode tap user <name>)";
//  - FAILED_PRECONDITION "<user> cannot open tap '<tap>': it is made for <owner> (...)";
//  - FAILED_PRECONDITION "network interface '<tap>' is not a tap";
//  - INTERNAL for an unreadable owner (sys::read_tap_owner()).
Status check_tap_for_user(const sys::Filesystem& fs, const sys::HostPaths& paths, const sys::RunAs& user,
                          const std::string& tap, const std::string& field);

}  // namespace feos::vmm::qemu
