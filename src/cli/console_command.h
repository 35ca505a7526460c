#pragma once
// `vm console`: an interactive session on the VM's serial console, or a scripted one with
// --send / --until / --wait.
#include "cli/command_line.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"

namespace feos::cli {

// Attaches to inv.vm_id's console and copies its output to stdout as raw bytes. Interactive (no
// --until or --send): stdin goes to the guest, in raw mode when it is a terminal, where Ctrl-]
// detaches; EOF on stdin stops sending but keeps showing output. --send TEXT sends TEXT and a
// newline first, then (without --until) detaches once the output was quiet for --idle-ms.
// --until TEXT ends with kExitOk once TEXT appeared in the output. --wait ends the session at
// that time: kExitOk, or with --until DEADLINE_EXCEEDED. Errors, one line on stderr and
// kExitServerError: the server's status (NOT_FOUND for an unknown VM, ...), ABORTED when the
// console closes before the --until text, INTERNAL when no waker or poll(2) is available.
int run_console_command(v1::VMService::Stub& stub, const Invocation& inv);

}  // namespace feos::cli
