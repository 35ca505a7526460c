#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "sys/filesystem.h"

namespace feos::sys {
namespace {

class PosixFilesystem final : public Filesystem {
 public:
  Result<std::string> read_file(const std::string& path) const override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_errno("read " + path, errno, code_for_errno(errno));
    std::string out;
    char buf[8192];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return fail_errno("read " + path, err, code_for_errno(err));
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Status write_file(const std::string& path, std::string_view data) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail_errno("write " + path, errno, code_for_errno(errno));
    ssize_t n;
    do {
      n = ::write(fd, data.data(), data.size());
    } while (n < 0 && errno == EINTR);
    int err = errno;
    ::close(fd);
    if (n < 0) return fail_errno("write '" + std::string(data) + "' to " + path, err, code_for_errno(err));
    if (static_cast<size_t>(n) != data.size())
      return fail(Code::kInternal, "short write to " + path);
    return ok();
  }

  Result<std::vector<std::string>> list_dir(const std::string& path) const override {
    DIR* dir = ::opendir(path.c_str());
    if (!dir) return fail_errno("list " + path, errno, code_for_errno(errno));
    std::vector<std::string> names;
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<std::string> read_link(const std::string& path) const override {
    char buf[4096];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
    if (n < 0) return fail_errno("readlink " + path, errno, code_for_errno(errno));
    return std::string(buf, static_cast<size_t>(n));
  }

  bool exists(const std::string& path) const override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }
};

}  // namespace

std::unique_ptr<Filesystem> make_posix_filesystem() { return std::make_unique<PosixFilesystem>(); }

Code code_for_errno(int err) {
  switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO: return Code::kNotFound;
    case EBUSY: return Code::kFailedPrecondition;
    case EACCES:
    case EPERM: return Code::kPermissionDenied;
    case EINVAL: return Code::kInvalidArgument;
    default: return Code::kInternal;
  }
}


std::string trim(std::string_view text) {
  size_t end = text.size();
  while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == ' ' || text[end - 1] == '\t' ||
                     text[end - 1] == '\r' || text[end - 1] == '\0'))
    --end;
  size_t begin = 0;
  while (begin < end && (text[begin] == ' ' || text[begin] == '\t')) ++begin;
  return std::string(text.substr(begin, end - begin));
}

std::string basename_of(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace feos::sys
