#include "sys/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

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

Status check_name(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return fail(Code::kInvalidArgument, "tap " + quote_for_message(name) + ": not an interface name");
  return ok();
}

// A /dev/net/tun descriptor attached to the tap `name` (TUNSETIFF, which creates a missing one:
// it lasts while the descriptor is open unless made persistent). The caller closes it.
Result<int> attach_tun(const std::string& name, const std::string& what) {
  Fd tun{::open("/dev/net/tun", O_RDWR | O_CLOEXEC)};
  if (tun.fd < 0) return fail(errno_error(what + ": open /dev/net/tun", errno));
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size());
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(tun.fd, TUNSETIFF, &request) != 0) return fail(errno_error(what, errno));
  return std::exchange(tun.fd, -1);
}

}  // namespace

bool interface_exists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

Result<bool> ensure_tap(const std::string& name, std::optional<uid_t> owner, std::optional<gid_t> group) {
  FEOS_TRY(check_name(name));
  if (interface_exists(name)) return false;
  const std::string what = "create tap " + name;
  FEOS_ASSIGN_OR_RETURN(int fd, attach_tun(name, what));
  Fd tun{fd};
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

Result<bool> remove_tap(const std::string& name) {
  FEOS_TRY(check_name(name));
  if (!interface_exists(name)) return false;
  const std::string what = "remove tap " + name;
  // Attaching to a tap that went meanwhile makes a passing one, which goes again below.
  FEOS_ASSIGN_OR_RETURN(int fd, attach_tun(name, what));
  Fd tun{fd};
  // Not persistent: the tap goes when this descriptor closes.
  if (::ioctl(tun.fd, TUNSETPERSIST, 0) != 0) return fail(errno_error(what + ": clear persistence", errno));
  return true;
}

bool TapOwner::admits(uid_t euid, const std::vector<gid_t>& groups) const {
  if (uid && *uid != euid) return false;
  return !gid || std::find(groups.begin(), groups.end(), *gid) != groups.end();
}

std::string TapOwner::describe() const {
  if (!uid && !gid) return "no owner or group";
  std::string out = uid ? "uid " + std::to_string(*uid) : "";
  if (gid) out += (out.empty() ? "" : " and ") + std::string("group ") + std::to_string(*gid);
  return out;
}

Result<TapOwner> read_tap_owner(const Filesystem& fs, const HostPaths& paths, const std::string& name) {
  const std::string shown = quote_for_message(name);
  if (!fs.exists(paths.net_interface(name)))
    return fail(Code::kNotFound, "no network interface " + shown);
  if (!fs.exists(paths.net_interface_attr(name, "tun_flags")))
    return fail(Code::kFailedPrecondition, "network interface " + shown + " is not a tap");
  // "-1" (the kernel's INVALID_UID/GID) when unset; an interface gone meanwhile reads as unset
  // and fails later where it is opened.
  auto id_of = [&](std::string_view attribute) -> Result<std::optional<unsigned>> {
    auto text = fs.read_file(paths.net_interface_attr(name, attribute));
    if (!text) return std::optional<unsigned>();
    std::string value = trim(*text);
    if (value == "-1") return std::optional<unsigned>();
    unsigned id = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), id);
    if (error != std::errc() || end != value.data() + value.size())
      return fail(Code::kInternal, "tap " + shown + ": " + std::string(attribute) + " " +
                                       quote_for_message(value) + " is not a number");
    return std::optional<unsigned>(id);
  };
  FEOS_ASSIGN_OR_RETURN(auto uid, id_of("owner"));
  FEOS_ASSIGN_OR_RETURN(auto gid, id_of("group"));
  TapOwner owner;
  if (uid) owner.uid = static_cast<uid_t>(*uid);
  if (gid) owner.gid = static_cast<gid_t>(*gid);
  return owner;
}

}  // namespace feos::sys
