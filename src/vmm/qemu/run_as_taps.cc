#include "vmm/qemu/run_as_taps.h"

#include "sys/tap.h"

namespace feos::vmm::qemu {

sys::AccessCheck tun_access_check(const sys::HostPaths& paths, const std::string& field) {
  return {field + " (tap device)", paths.tun(), sys::Access::kReadWrite};
}

Status check_tap_for_user(const sys::Filesystem& fs, const sys::HostPaths& paths, const sys::RunAs& user,
                          const std::string& tap, const std::string& field) {
  const std::string shown = quote_for_message(tap);
  auto owner = sys::read_tap_owner(fs, paths, tap);
  if (!owner && owner.error().code == Code::kNotFound)
    return fail(Code::kFailedPrecondition,
                field + ": tap " + shown + " does not exist, and qemu, running as " + user.describe() +
                    ", cannot create it: create it for that user (ip tuntap add " + tap + " mode tap user " +
                    user.name + ")");
  if (!owner) return fail(owner.error().context(field));
  if (owner->admits(user.uid, user.groups)) return ok();
  return fail(Code::kFailedPrecondition,
              field + ": " + user.describe() + " cannot open tap " + shown + ": it is made for " +
                  owner->describe() + " (feosd does not change an existing tap's owner): create it for that user " +
                  "(ip tuntap add " + tap + " mode tap user " + user.name + "), or leave the name free for feosd to "
                  "create when the NIC is attached to a running VM");
}

}  // namespace feos::vmm::qemu
