// The pieces of `vm create --dry-run`'s table: shell quoting of the command line, sizes in GiB.
#include "cli/plan_format.h"

#include <gtest/gtest.h>

namespace feos::cli {
namespace {

TEST(ShellQuote, PlainWordsStayAndTheRestIsSingleQuoted) {
  EXPECT_EQ(shell_quote("vfio-pci,host=0000:18:00.0,bus=feos-gpu0-rp,addr=0x0.0"),
            "vfio-pci,host=0000:18:00.0,bus=feos-gpu0-rp,addr=0x0.0");
  EXPECT_EQ(shell_quote("/var/lib/feosd/vms/a/qemu.pid"), "/var/lib/feosd/vms/a/qemu.pid");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("console=ttyS0 quiet"), "'console=ttyS0 quiet'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("$HOME;rm"), "'$HOME;rm'");
}

TEST(FormatGib, WholeGibibytesOrThreeDecimalsWithTheExactSizeBelowOne) {
  EXPECT_EQ(format_gib(0), "0 GiB");
  EXPECT_EQ(format_gib(uint64_t{2304} << 30), "2304 GiB");
  EXPECT_EQ(format_gib(uint64_t{48} << 20), "0.047 GiB (48MiB)");
  EXPECT_EQ(format_gib((uint64_t{3} << 30) / 2), "1.500 GiB");
}

}  // namespace
}  // namespace feos::cli
