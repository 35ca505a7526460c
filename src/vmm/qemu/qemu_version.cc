#include "vmm/qemu/qemu_version.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "sys/spawn.h"

namespace feos::vmm::qemu {

std::optional<QemuVersion> parse_qemu_version(std::string_view output) {
  constexpr std::string_view kPrefix = "QEMU emulator version ";
  const size_t at = output.find(kPrefix);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string rest(output.substr(at + kPrefix.size(), 32));
  QemuVersion v;
  if (std::sscanf(rest.c_str(), "%d.%d.%d", &v.major, &v.minor, &v.micro) < 2 || v.major <= 0) return std::nullopt;
  return v;
}

Result<QemuVersion> probe_qemu_version(const std::string& binary) {
  // A name without a slash is looked up in PATH, as the VMs' qemu is.
  if (binary.find('/') != std::string::npos && ::access(binary.c_str(), X_OK) != 0)
    return fail_errno(binary, errno, Code::kNotFound);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return fail_errno("pipe", errno);
  std::string path = binary, flag = "-version";
  char* argv[] = {path.data(), flag.data(), nullptr};
  auto spawned = sys::spawn_with_report([&](const sys::ChildReporter& report) {
    ::dup2(out[1], 1);
    ::execvp(argv[0], argv);
    report.fail(0, errno);
  }, "fork " + binary);
  ::close(out[1]);
  std::string output;
  char buf[1024];
  ssize_t n;
  while (output.size() < 16384 && ((n = ::read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)))
    if (n > 0) output.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  if (!spawned) return fail(spawned.error());
  int wstatus = 0;
  while (::waitpid(spawned->pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (spawned->failure) return fail_errno("exec " + binary, spawned->failure->err, Code::kNotFound);
  auto version = parse_qemu_version(output);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 || !version)
    return fail(Code::kInternal, binary + " -version: no version in " + quote_for_message(output.substr(0, 200)));
  return *version;
}

}  // namespace feos::vmm::qemu
