// Interrupt remapping as sysfs (Intel DMAR ecap, AMD-Vi) and the kernel command line show it.
#include "pci/iommu.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sysfs_tree.h"

namespace feos::pci {
namespace {

using State = InterruptRemapping::State;

class InterruptRemappingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    paths_.sysfs_root = tmp_.path() + "/sys";
    paths_.proc_root = tmp_.path() + "/proc";
    put(paths_.kernel_cmdline(), "BOOT_IMAGE=/vmlinuz intel_iommu=on quiet\n");
  }
  static void put(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::trunc) << text;
  }
  InterruptRemapping read(bool iommu_enabled = true) const {
    return read_interrupt_remapping(*fs_, paths_, iommu_enabled);
  }

  test::TempDir tmp_;
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
  sys::HostPaths paths_;
};

TEST_F(InterruptRemappingTest, OffWithoutIommuUnknownWithoutUnits) {
  EXPECT_EQ(read(false).state, State::kOff);
  EXPECT_EQ(read(false).detail, "the IOMMU is not enabled");
  auto none = read();
  EXPECT_EQ(none.state, State::kUnknown);
  EXPECT_EQ(none.detail, "no IOMMU units under " + paths_.iommu_class() + " to read");
}

TEST_F(InterruptRemappingTest, IntelUnitsWithBit3AreOn) {
  put(paths_.intel_iommu_ecap("dmar0"), "19e2ff0505e\n");
  put(paths_.intel_iommu_ecap("dmar1"), "0x00019e2ff0505e\n");  // prefix and leading zeros
  auto on = read();
  EXPECT_EQ(on.state, State::kOn) << on.detail;
  EXPECT_EQ(on.detail,
            "supported by all 2 DMAR units (ecap bit 3) and not disabled on the kernel command line");
}

TEST_F(InterruptRemappingTest, OneUnitWithoutBit3IsOff) {
  put(paths_.intel_iommu_ecap("dmar0"), "19e2ff0505e\n");
  put(paths_.intel_iommu_ecap("dmar1"), "f0050\n");
  auto off = read();
  EXPECT_EQ(off.state, State::kOff);
  EXPECT_EQ(off.detail, "dmar1 lacks interrupt remapping (" + paths_.intel_iommu_ecap("dmar1") +
                            " = f0050, bit 3 clear)");
}

TEST_F(InterruptRemappingTest, CommandLineTurnsItOff) {
  put(paths_.intel_iommu_ecap("dmar0"), "19e2ff0505e\n");
  for (const char* word : {"intremap=off", "nointremap"}) {
    put(paths_.kernel_cmdline(), std::string("BOOT_IMAGE=/vmlinuz\tintel_iommu=on ") + word + "\n");
    auto off = read();
    EXPECT_EQ(off.state, State::kOff) << word;
    EXPECT_EQ(off.detail, std::string("disabled on the kernel command line (") + word + ")");
  }
  put(paths_.kernel_cmdline(), "BOOT_IMAGE=/vmlinuz intremap=offx\n");  // words, not substrings
  EXPECT_EQ(read().state, State::kOn);
}

TEST_F(InterruptRemappingTest, AmdAndUnreadableUnitsAreUnknown) {
  std::filesystem::create_directories(paths_.amd_iommu("ivhd0"));
  auto amd = read();
  EXPECT_EQ(amd.state, State::kUnknown);
  EXPECT_NE(amd.detail.find("AMD-Vi does not show interrupt remapping"), std::string::npos)
      << amd.detail;

  std::filesystem::remove_all(paths_.iommu_class());
  std::filesystem::create_directories(paths_.iommu_class() + "/dmar0");
  auto unreadable = read();
  EXPECT_EQ(unreadable.state, State::kUnknown);
  EXPECT_EQ(unreadable.detail, "cannot read " + paths_.intel_iommu_ecap("dmar0"));
}

TEST_F(InterruptRemappingTest, MalformedEcapIsUnknownAndQuoted) {
  // Not hex, or more than 64 bits.
  for (const char* text : {"zz", "0x", "-8", "1 8", "10000000000000008"}) {
    put(paths_.intel_iommu_ecap("dmar0"), std::string(text) + "\n");
    auto malformed = read();
    EXPECT_EQ(malformed.state, State::kUnknown) << text;
    EXPECT_EQ(malformed.detail, "malformed " + paths_.intel_iommu_ecap("dmar0") + ": '" + text + "'")
        << text;
  }
}

}  // namespace
}  // namespace feos::pci
