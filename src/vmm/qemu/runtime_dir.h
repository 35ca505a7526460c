#pragma once
// One VM's runtime directory: the names of the files in it (the argv builder puts them on qemu's
// command line) and the daemon's own file I/O there. With run_as, qemu's user may create entries
// in the directory, so nothing here follows a symbolic link at a file's name.
#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "vmm/qemu/firmware.h"

namespace feos::vmm::qemu {

// Per-VM files in the runtime directory (see runtime_files()).
struct RuntimeFiles {
  std::string qmp_socket;
  std::string console_socket;
  std::string pid_file;
  std::string ignition_file;  // written by the adapter when spec.ignition is set
  std::string qemu_log;       // qemu's stdout+stderr (not on the command line)
  std::string console_log;    // everything the guest wrote to its serial port
  std::string uefi_vars;      // UEFI guests: the VM's own variable store (pflash1)
};

// The fixed file names inside `runtime_dir`: qmp.sock, console.sock, qemu.pid, ignition.json,
// qemu.log, console.log, uefi-vars.fd.
RuntimeFiles runtime_files(const std::string& runtime_dir);

class RuntimeDir {
 public:
  // `path` exists, owned by the caller (core/); it is used as given.
  explicit RuntimeDir(std::string path) : path_(std::move(path)), files_(runtime_files(path_)) {}

  const std::string& path() const { return path_; }
  const RuntimeFiles& files() const { return files_; }

  // The pid of the process holding the lock qemu keeps on its pidfile for its whole life (-1 when
  // the lock does not say, e.g. a holder in another pid namespace), or 0 when no process holds it:
  // no file, or one a dead qemu left. FAILED_PRECONDITION when the file cannot be inspected (a
  // symlink planted by qemu's user, ...): never taken for "nobody holds it".
  Result<int> pid_file_holder() const;

  // Removes the sockets and the pidfile a previous qemu left (absent ones are fine).
  // INTERNAL "remove <path>: <errno text>" otherwise.
  Status remove_stale() const;

  // Writes the ignition file, mode 0600 (truncated when it exists). INTERNAL "create|write|close
  // <path>: <errno text>" on failure.
  Status write_ignition(const std::string& data) const;

  // UEFI guests: the VM's variable store. The first start copies the firmware's template (mode
  // 0600, written aside and renamed into place); later starts keep the VM's variables (boot
  // entries, Secure Boot state) and check the file (check_uefi_vars). It lives as long as the
  // runtime directory: from the first start until the VM is deleted. Errors: check_uefi_vars'
  // FAILED_PRECONDITION; FAILED_PRECONDITION when the file cannot be read (a symbolic link planted
  // by qemu's user, ...); INTERNAL "create|write|rename ..." when the copy fails.
  Status ensure_uefi_vars(const UefiFirmware& firmware) const;

  // Creates qemu.log and console.log (empty, mode 0640) unless they exist, so that they are the
  // daemon's before qemu's user may create entries here. INTERNAL "create <path>: ..." on failure.
  Status create_logs() const;

  // The size of qemu.log (0 when absent): where the output of a process launched now begins.
  off_t qemu_log_size() const;

  // The last lines qemu wrote to qemu.log since `offset`, joined by " | ", from at most its last
  // 600 bytes (a first line cut there is dropped), control bytes escaped: it goes into error
  // messages (cut at 1 KiB by the API) and logs. "" when there is nothing new or no such file.
  std::string qemu_log_tail(off_t offset) const;

 private:
  std::string path_;
  RuntimeFiles files_;
};

}  // namespace feos::vmm::qemu
