// sys::ensure_tap() and sys::remove_tap() on real taps of this host (needs CAP_NET_ADMIN: skipped
// otherwise): a created tap is persistent, owned as asked and up; removed, it is gone; removing a
// missing one is no error.
#include "sys/tap.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "sys/filesystem.h"

namespace feos::sys {
namespace {

TEST(Tap, CreatedForAUserThenRemoved) {
  if (::geteuid() != 0) GTEST_SKIP() << "creating a tap needs root";
  const std::string name = "feostap" + std::to_string(::getpid() % 100000);
  ASSERT_FALSE(interface_exists(name));
  auto created = ensure_tap(name, 65534, std::nullopt);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_TRUE(*created);
  EXPECT_TRUE(interface_exists(name));
  auto fs = make_posix_filesystem();
  auto owner = read_tap_owner(*fs, HostPaths{}, name);
  ASSERT_TRUE(owner) << owner.error().to_string();
  EXPECT_EQ(owner->uid, std::optional<uid_t>(65534));
  EXPECT_FALSE(owner->gid);
  auto again = ensure_tap(name, 65534, std::nullopt);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again) << "an existing tap is left as it is";

  auto removed = remove_tap(name);
  ASSERT_TRUE(removed) << removed.error().to_string();
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(interface_exists(name));
  auto gone = remove_tap(name);
  ASSERT_TRUE(gone) << gone.error().to_string();
  EXPECT_FALSE(*gone);
  EXPECT_EQ(remove_tap("a-name-far-too-long").error().code, Code::kInvalidArgument);
}

}  // namespace
}  // namespace feos::sys
