#pragma once
// The table form of `feosctl vm create --dry-run`: the plan of feosd.v1.VmPlan in sections
// (GPUs, decisions, address space, qemu command line). `-o json` prints the response instead.
#include <string>
#include <string_view>

#include "feosd/v1/plan.pb.h"

namespace feos::cli {

// `arg` as one POSIX shell word: unchanged when it holds only [A-Za-z0-9_@%+=:,./-] (and is not
// empty), else in single quotes with each ' written '\''.
std::string shell_quote(std::string_view arg);

// A byte count in GiB: "128 GiB" when whole, else up to three decimals ("0.047 GiB"), with the
// exact binary size beside sizes under 1 GiB ("0.047 GiB (48 MiB)").
std::string format_gib(uint64_t bytes);

// Sections, e.g.
//   vm:  8c1f...
//   gpus:
//     0000:18:00.0  numa node 0
//       0000:18:00.0  10de:2330  class 0x030200  group 59  nvidia  BAR0 16MiB, BAR1 128GiB 64-bit pref, ...
//   decisions:
//     - 0000:18:00.0 (10de:2330) is allowed by the GPU policy (...)
//   address space:
//     ram:          16 GiB
//     below 4 GiB:  0.078 GiB (80 MiB)
//     64-bit hole:  2304 GiB at 1024 GiB (0x10000000000)
//     phys-bits:    43
//   qemu command line:
//     qemu-system-x86_64 <backslash>
//       -name <backslash>
//       guest=...,debug-threads=on <backslash>
//       ...
// the command line one argument per line, shell-quoted, each line but the last ending in " \"
// (a backslash), so it can be pasted into a shell.
std::string format_plan(const feosd::v1::VmPlan& plan);

}  // namespace feos::cli
