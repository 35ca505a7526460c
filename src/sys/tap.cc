#include "sys/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace feos::sys {
namespace {

Error errno_error(const std::string& what, int error) {
  Code code = error == EPERM || error == EACCES ? Code::kPermissionDenied : Code::kInternal;
  return Error{code, what + ": " + std::strerror(error)};
}

// Closes a descriptor when it leaves scope.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool interface_exists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

Result<bool> ensure_tap(const std::string& name, std::optional<uid_t> owner, std::optional<gid_t> group) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return fail(Code::kInvalidArgument, "tap " + quote_for_message(name) + ": not an interface name");
  if (interface_exists(name)) return false;
  const std::string what = "create tap " + name;
  Fd tun{::open("/dev/net/tun", O_RDWR | O_CLOEXEC)};
  if (tun.fd < 0) return fail(errno_error(what + ": open /dev/net/tun", errno));
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size());
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(tun.fd, TUNSETIFF, &request) != 0) return fail(errno_error(what, errno));
  if (owner && ::ioctl(tun.fd, TUNSETOWNER, static_cast<unsigned long>(*owner)) != 0)
    return fail(errno_error(what + ": set owner", errno));
  if (group && ::ioctl(tun.fd, TUNSETGROUP, static_cast<unsigned long>(*group)) != 0)
    return fail(errno_error(what + ": set group", errno));
  // Persistent: the tap stays when this descriptor closes, for qemu to open.
  if (::ioctl(tun.fd, TUNSETPERSIST, 1) != 0) return fail(errno_error(what + ": make persistent", errno));
  Fd sock{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) return fail(errno_error(what + ": socket", errno));
  ifreq flags{};
  std::memcpy(flags.ifr_name, name.c_str(), name.size());
  if (::ioctl(sock.fd, SIOCGIFFLAGS, &flags) != 0) return fail(errno_error(what + ": read flags", errno));
  flags.ifr_flags |= IFF_UP;
  if (::ioctl(sock.fd, SIOCSIFFLAGS, &flags) != 0) return fail(errno_error(what + ": set up", errno));
  return true;
}

}  // namespace feos::sys
