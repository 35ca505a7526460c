#include "image/vm_disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

#include "sys/spawn.h"

namespace feos::image {

Status create_overlay(const std::string& qemu_img, const std::string& base, const std::string& overlay,
                      const std::optional<DiskOwner>& owner) {
  if (::access(qemu_img.c_str(), X_OK) != 0) return fail_errno(qemu_img, errno, Code::kNotFound);
  std::vector<std::string> args = {qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // qemu-img's messages go to a log beside the overlay, read back for the error.
  const std::string log = overlay + ".log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) return fail_errno("create " + log, errno);
  auto spawned = sys::spawn_with_report([&](const sys::ChildReporter& report) {
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(argv[0], argv.data());
    report.fail(0, errno);
  }, "fork qemu-img");
  ::close(log_fd);
  if (!spawned) return fail(spawned.error());
  if (spawned->failure) return fail_errno("exec " + qemu_img, spawned->failure->err);
  int wstatus = 0;
  while (::waitpid(spawned->pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  std::ifstream in(log);
  std::stringstream output;
  output << in.rdbuf();
  ::unlink(log.c_str());
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
    return fail(Code::kInternal, "qemu-img create " + overlay + " failed: " + quote_for_message(output.str()));
  if (::chmod(overlay.c_str(), 0600) != 0) return fail_errno("chmod " + overlay, errno);
  if (owner && ::chown(overlay.c_str(), owner->uid, owner->gid) != 0) return fail_errno("chown " + overlay, errno);
  return ok();
}

}  // namespace feos::image
