#include "vmm/qemu/runtime_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "common/text.h"
#include "sys/filesystem.h"

namespace feos::vmm::qemu {
namespace {

// Creates `path` (empty, mode 0640) unless it exists; never through a symbolic link.
Status ensure_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) return fail_errno("create " + path, errno);
  ::close(fd);
  return ok();
}

Status write_private_file(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno("create " + path, errno);
  std::string_view rest(data);
  while (!rest.empty()) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      return fail_errno("write " + path, err);
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (::close(fd) != 0) return fail_errno("close " + path, errno);
  return ok();
}

// The whole file; `no_follow` refuses a symbolic link at `path`. NOT_FOUND when it is absent.
Result<std::string> read_whole(const std::string& path, bool no_follow) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (no_follow ? O_NOFOLLOW : 0));
  if (fd < 0) return fail_errno("open " + path, errno, errno == ENOENT ? Code::kNotFound : Code::kFailedPrecondition);
  std::string data;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return fail_errno("read " + path, err, Code::kFailedPrecondition);
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

Status remove_stale(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail_errno("remove " + path, errno);
  return ok();
}

}  // namespace

RuntimeFiles runtime_files(const std::string& runtime_dir) {
  RuntimeFiles files;
  files.qmp_socket = runtime_dir + "/qmp.sock";
  files.console_socket = runtime_dir + "/console.sock";
  files.pid_file = runtime_dir + "/qemu.pid";
  files.ignition_file = runtime_dir + "/ignition.json";
  files.qemu_log = runtime_dir + "/qemu.log";
  files.console_log = runtime_dir + "/console.log";
  files.uefi_vars = runtime_dir + "/uefi-vars.fd";
  return files;
}

Result<int> RuntimeDir::pid_file_holder() const {
  const std::string& path = files_.pid_file;
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return 0;
  if (fd < 0) return fail_errno("inspect the pidfile " + path, errno, Code::kFailedPrecondition);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  int err = ::fcntl(fd, F_GETLK, &lock) == 0 ? 0 : errno;
  ::close(fd);
  if (err != 0) return fail_errno("inspect the pidfile lock of " + path, err, Code::kFailedPrecondition);
  if (lock.l_type == F_UNLCK) return 0;
  return lock.l_pid > 0 ? lock.l_pid : -1;
}

Status RuntimeDir::remove_stale() const {
  for (const auto* path : {&files_.qmp_socket, &files_.console_socket, &files_.pid_file})
    FEOS_TRY(qemu::remove_stale(*path));
  return ok();
}

Status RuntimeDir::write_ignition(const std::string& data) const {
  return write_private_file(files_.ignition_file, data);
}

Status RuntimeDir::ensure_uefi_vars(const UefiFirmware& firmware) const {
  auto existing = read_whole(files_.uefi_vars, /*no_follow=*/true);
  if (existing) return check_uefi_vars(*existing, firmware, files_.uefi_vars);
  if (existing.error().code != Code::kNotFound)
    return fail(Code::kFailedPrecondition, "UEFI variable store: " + existing.error().message);
  FEOS_ASSIGN_OR_RETURN(const std::string fresh, read_whole(firmware.vars_template, /*no_follow=*/false));
  FEOS_TRY(check_uefi_vars(fresh, firmware, firmware.vars_template));
  // Written aside and renamed: a daemon killed while copying leaves no half store behind.
  const std::string partial = files_.uefi_vars + ".partial";
  FEOS_TRY(write_private_file(partial, fresh));
  if (::rename(partial.c_str(), files_.uefi_vars.c_str()) != 0)
    return fail_errno("rename " + partial + " to " + files_.uefi_vars, errno);
  return ok();
}

Status RuntimeDir::create_logs() const {
  FEOS_TRY(ensure_file(files_.qemu_log));
  return ensure_file(files_.console_log);
}

off_t RuntimeDir::qemu_log_size() const {
  struct stat st {};
  return ::stat(files_.qemu_log.c_str(), &st) == 0 ? st.st_size : 0;
}

std::string RuntimeDir::qemu_log_tail(off_t offset) const {
  // O_NOFOLLOW: with run_as, qemu's user can create entries in the runtime dir.
  int fd = ::open(files_.qemu_log.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && st.st_size > offset) {
    off_t start = std::max<off_t>(offset, st.st_size - 600);
    text.resize(static_cast<size_t>(st.st_size - start));
    ssize_t n = ::pread(fd, text.data(), text.size(), start);
    text.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (start > offset) {
      auto newline = text.find('\n');  // drop a cut first line
      text = newline == std::string::npos ? text : text.substr(newline + 1);
    }
  }
  ::close(fd);
  std::string out;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = sys::trim(std::string_view(text).substr(begin, end - begin));
    if (!line.empty()) out += (out.empty() ? "" : " | ") + line;
    begin = end + 1;
  }
  return escape_controls(out);
}

}  // namespace feos::vmm::qemu
