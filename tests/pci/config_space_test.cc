#include "pci/config_space.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "sysfs_tree.h"

namespace feos::pci {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Cap {
  uint16_t offset;
  uint16_t id;
  bool extended;
  friend bool operator==(const Cap&, const Cap&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Cap& c) {
    return os << "{0x" << std::hex << c.offset << ", 0x" << c.id << std::dec
              << (c.extended ? ", ext}" : "}");
  }
};

std::vector<Cap> caps_of(const ConfigSpace& cs) {
  std::vector<Cap> out;
  for (const auto& c : cs.capabilities) out.push_back({c.offset, c.id, c.extended});
  return out;
}

// The captured guest's config files, read the way the daemon reads sysfs.
class CapturedConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = test::materialize_sysfs_capture(test::fixtures_dir() + "/sysfs/h100-guest", tmp_.path());
    ASSERT_TRUE(st) << st.error().message;
    paths_.sysfs_root = tmp_.path();
  }
  Result<ConfigSpace> read(const std::string& bdf) {
    std::string path = paths_.pci_device(bdf) + "/config";
    auto bytes = fs_->read_file(path);
    if (!bytes) return fail(bytes.error());
    return parse_config_space(*bytes, path);
  }
  test::TempDir tmp_;
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
  sys::HostPaths paths_;
};

TEST_F(CapturedConfigTest, H100CapabilitiesAsLspciShowsThem) {
  auto cs = read("0000:00:06.0");
  ASSERT_TRUE(cs) << cs.error().message;
  EXPECT_EQ(cs->size, 4096u);
  EXPECT_EQ(cs->vendor_id, 0x10de);
  EXPECT_EQ(cs->device_id, 0x2330);
  EXPECT_EQ(cs->class_code, 0x030200u);
  EXPECT_EQ(cs->header_type, 0);
  // `lspci -vvv -F` on the same bytes lists these; the id-0 extended entries are capabilities
  // QEMU's vfio-pci hides from the guest (it zeroes the id and keeps the chain).
  EXPECT_EQ(caps_of(*cs), (std::vector<Cap>{
                              {0x40, kCapPowerManagement, false},
                              {0x48, kCapMsi, false},
                              {0x60, kCapPciExpress, false},
                              {0xb0, kCapMsix, false},
                              {0x100, kExtCapNull, true},
                              {0x12c, 0x18, true},  // LTR
                              {0x134, kExtCapNull, true},
                              {0x1b8, kExtCapAer, true},
                              {0x248, kExtCapNull, true},
                              {0x250, kExtCapNull, true},
                              {0x2a4, 0x0b, true},  // vendor specific
                              {0x2b8, 0x04, true},  // power budgeting
                              {0x2f0, 0x03, true},  // device serial number
                          }));
  EXPECT_THAT(cs->problems, IsEmpty());
  EXPECT_EQ(cs->find(kExtCapAer, true)->version, 2);
  EXPECT_EQ(cs->find(kExtCapAer, true)->to_string(), "ext 0x0001 AER");
  EXPECT_EQ(cs->find(kCapPciExpress, false)->to_string(), "PCI Express");
  EXPECT_EQ(cs->find(kExtCapAcs, true), nullptr);
  ASSERT_TRUE(cs->pcie);
  EXPECT_EQ(cs->pcie->offset, 0x60);
  EXPECT_EQ(cs->pcie->version, 2);
  EXPECT_EQ(cs->pcie->port_type, 0);  // endpoint
  EXPECT_TRUE(cs->pcie->flr);         // sysfs reset_method says "flr" too
  EXPECT_TRUE(cs->flr_supported());
  EXPECT_EQ(cs->pcie->max_link_speed, 5);
  EXPECT_DOUBLE_EQ(cs->pcie->max_link_gts(), 32.0);  // max_link_speed "32.0 GT/s PCIe"
  EXPECT_EQ(cs->pcie->max_link_width, 16);
}

TEST_F(CapturedConfigTest, VirtioDeviceHasNoExpressCapability) {
  auto cs = read("0000:00:01.0");
  ASSERT_TRUE(cs) << cs.error().message;
  EXPECT_EQ(cs->size, 256u);
  EXPECT_FALSE(cs->has_extended_space());
  EXPECT_EQ(caps_of(*cs), (std::vector<Cap>{{0x40, kCapVendorSpecific, false},
                                            {0x50, kCapVendorSpecific, false},
                                            {0x60, kCapVendorSpecific, false},
                                            {0x70, kCapVendorSpecific, false},
                                            {0x84, kCapVendorSpecific, false},
                                            {0x98, kCapMsix, false}}));
  EXPECT_FALSE(cs->pcie);
  EXPECT_FALSE(cs->flr_supported());
  EXPECT_THAT(cs->problems, IsEmpty());
}

TEST_F(CapturedConfigTest, HostBridgeWithoutCapabilityList) {
  // Its status register's Capabilities List bit is clear, and extended space is all zero.
  auto cs = read("0000:00:00.0");
  ASSERT_TRUE(cs) << cs.error().message;
  EXPECT_EQ(cs->class_code, 0x060000u);
  EXPECT_THAT(cs->capabilities, IsEmpty());
  EXPECT_THAT(cs->problems, IsEmpty());
}

TEST_F(CapturedConfigTest, EveryCapturedFunctionParsesCleanly) {
  for (const char* bdf : {"0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:00:03.0",
                          "0000:00:04.0", "0000:00:05.0", "0000:00:06.0"}) {
    auto cs = read(bdf);
    ASSERT_TRUE(cs) << bdf << ": " << cs.error().message;
    EXPECT_THAT(cs->problems, IsEmpty()) << bdf;
  }
}

// Crafted config spaces: a device (or a hostile hypervisor in front of it) controls every byte.
class Crafted {
 public:
  explicit Crafted(size_t size = kConfigExtendedSize) : bytes_(size, '\0') {
    put16(0x00, 0x10de);
    put16(0x02, 0x2330);
    put16(0x06, 0x0010);  // Capabilities List
  }
  Crafted& put8(size_t at, uint8_t v) {
    bytes_[at] = static_cast<char>(v);
    return *this;
  }
  Crafted& put16(size_t at, uint16_t v) { return put8(at, v & 0xff).put8(at + 1, v >> 8); }
  Crafted& put32(size_t at, uint32_t v) { return put16(at, v & 0xffff).put16(at + 2, v >> 16); }
  // A standard capability header.
  Crafted& cap(size_t at, uint8_t id, uint8_t next) { return put8(at, id).put8(at + 1, next); }
  // An extended capability header.
  Crafted& ext(size_t at, uint16_t id, uint8_t version, uint16_t next) {
    return put32(at, id | (uint32_t{version} << 16) | (uint32_t{next} << 20));
  }
  std::string_view bytes() const { return bytes_; }
  Result<ConfigSpace> parse() const { return parse_config_space(bytes_, "crafted/config"); }

 private:
  std::string bytes_;
};

TEST(ConfigSpaceTest, RejectsWrongSizesAndAllOnes) {
  for (size_t size : {size_t{0}, size_t{63}, size_t{4097}}) {
    auto bad = parse_config_space(std::string(size, '\0'), "dev/config");
    ASSERT_FALSE(bad) << size;
    EXPECT_EQ(bad.error().code, Code::kInternal);
    EXPECT_THAT(bad.error().message, HasSubstr("dev/config: " + std::to_string(size) + " bytes"));
  }
  auto ones = parse_config_space(std::string(256, '\xff'), "dev/config");
  ASSERT_FALSE(ones);
  EXPECT_THAT(ones.error().message, HasSubstr("all ones"));
  // The unprivileged 64-byte read parses; its list pointer leads past what was read.
  auto header_only = Crafted(64).put8(0x34, 0x40).parse();
  ASSERT_TRUE(header_only) << header_only.error().message;
  EXPECT_THAT(header_only->capabilities, IsEmpty());
  ASSERT_EQ(header_only->problems.size(), 1u);
  EXPECT_THAT(header_only->problems[0], HasSubstr("points to 0x40, beyond the 64 bytes read"));
}

TEST(ConfigSpaceTest, StandardListLoopStops) {
  auto cs = Crafted().put8(0x34, 0x40).cap(0x40, kCapPowerManagement, 0x48).cap(0x48, kCapMsi, 0x40).parse();
  ASSERT_TRUE(cs);
  EXPECT_EQ(caps_of(*cs), (std::vector<Cap>{{0x40, kCapPowerManagement, false}, {0x48, kCapMsi, false}}));
  ASSERT_EQ(cs->problems.size(), 1u);
  EXPECT_EQ(cs->problems[0], "capability list: the entry at 0x48 points back to 0x40 (a loop)");

  auto self = Crafted().put8(0x34, 0x40).cap(0x40, kCapMsi, 0x40).parse();
  ASSERT_TRUE(self);
  EXPECT_EQ(self->capabilities.size(), 1u);
  EXPECT_THAT(self->problems.at(0), HasSubstr("(a loop)"));
}

TEST(ConfigSpaceTest, StandardPointersIntoTheHeaderStop) {
  auto first = Crafted().put8(0x34, 0x10).parse();
  ASSERT_TRUE(first);
  EXPECT_THAT(first->capabilities, IsEmpty());
  EXPECT_EQ(first->problems.at(0),
            "capability list: the pointer at 0x34 points to 0x10, inside the 64-byte header");
  auto later = Crafted().put8(0x34, 0x40).cap(0x40, kCapMsi, 0x3c).parse();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->capabilities.size(), 1u);
  EXPECT_THAT(later->problems.at(0), HasSubstr("the entry at 0x40 points to 0x3c, inside"));
}

TEST(ConfigSpaceTest, PointerLowBitsAreMasked) {
  // The spec reserves bits 1:0 of every pointer; software masks them.
  auto cs = Crafted().put8(0x34, 0x43).cap(0x40, kCapMsi, 0x4b).cap(0x48, kCapMsix, 0x02).parse();
  ASSERT_TRUE(cs);
  EXPECT_EQ(caps_of(*cs), (std::vector<Cap>{{0x40, kCapMsi, false}, {0x48, kCapMsix, false}}));
  EXPECT_THAT(cs->problems, IsEmpty());  // 0x02 masks to 0: the end
}

TEST(ConfigSpaceTest, LongestPossibleStandardList) {
  // Every dword from 0x40 to 0xfc holds an entry: 48, the most that fit.
  auto chain = [](bool loop_back) {
    Crafted c;
    c.put8(0x34, 0x40);
    for (size_t at = 0x40; at < 0x100; at += 4)
      c.cap(at, kCapVendorSpecific, static_cast<uint8_t>(at + 4 < 0x100 ? at + 4 : loop_back ? 0x40 : 0));
    return c.parse();
  };
  auto full = chain(false);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->capabilities.size(), 48u);
  EXPECT_THAT(full->problems, IsEmpty());
  // The same with the last entry pointing back to the first: the 49th step is refused.
  auto looped = chain(true);
  ASSERT_TRUE(looped);
  EXPECT_EQ(looped->capabilities.size(), 48u);
  EXPECT_EQ(looped->problems.at(0), "capability list: more than 48 entries, rest not read");
}

TEST(ConfigSpaceTest, EntryReadingAllOnesStops) {
  auto cs = Crafted().put8(0x34, 0x40).cap(0x40, kCapMsi, 0x80).cap(0x80, 0xff, 0xff).parse();
  ASSERT_TRUE(cs);
  EXPECT_EQ(cs->capabilities.size(), 1u);
  EXPECT_THAT(cs->problems.at(0), HasSubstr("entry at 0x80 reads as 0xff"));
}

TEST(ConfigSpaceTest, NoListWithoutTheStatusBitOrForUnknownHeaders) {
  auto no_bit = Crafted().put16(0x06, 0).put8(0x34, 0x40).cap(0x40, kCapMsi, 0).parse();
  ASSERT_TRUE(no_bit);
  EXPECT_THAT(no_bit->capabilities, IsEmpty());
  EXPECT_THAT(no_bit->problems, IsEmpty());

  auto unknown = Crafted().put8(0x0e, 0x7f).put8(0x34, 0x40).cap(0x40, kCapMsi, 0).parse();
  ASSERT_TRUE(unknown);
  EXPECT_THAT(unknown->capabilities, IsEmpty());
  EXPECT_THAT(unknown->problems.at(0), HasSubstr("unknown header type 0x7f"));

  // A CardBus bridge keeps its pointer at 0x14; the multi-function bit (0x80) is not the type.
  auto cardbus = Crafted().put8(0x0e, 0x82).put8(0x14, 0x80).cap(0x80, kCapPowerManagement, 0).parse();
  ASSERT_TRUE(cardbus);
  EXPECT_EQ(cardbus->header_type, 2);
  EXPECT_EQ(caps_of(*cardbus), (std::vector<Cap>{{0x80, kCapPowerManagement, false}}));
}

TEST(ConfigSpaceTest, ExpressCapabilityDecodedAndBoundsChecked) {
  Crafted c;
  c.put8(0x34, 0x40).cap(0x40, kCapPciExpress, 0).put16(0x42, 0x0092);  // v2, port type 9
  c.put32(0x44, 0x00008000);                                             // no FLR
  c.put32(0x4c, 0x00000083);                                             // 8 GT/s x8
  auto cs = c.parse();
  ASSERT_TRUE(cs);
  ASSERT_TRUE(cs->pcie);
  EXPECT_EQ(cs->pcie->port_type, 9);
  EXPECT_FALSE(cs->pcie->flr);
  EXPECT_FALSE(cs->flr_supported());
  EXPECT_DOUBLE_EQ(cs->pcie->max_link_gts(), 8.0);
  EXPECT_EQ(cs->pcie->max_link_width, 8);

  auto reserved_speed = Crafted().put8(0x34, 0x40).cap(0x40, kCapPciExpress, 0).put32(0x4c, 0x0f).parse();
  ASSERT_TRUE(reserved_speed && reserved_speed->pcie);
  EXPECT_EQ(reserved_speed->pcie->max_link_gts(), 0.0);

  // At 0xf8 its registers would run past 0xff.
  auto cut = Crafted().put8(0x34, 0xf8).cap(0xf8, kCapPciExpress, 0).parse();
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->capabilities.size(), 1u);
  EXPECT_FALSE(cut->pcie);
  EXPECT_THAT(cut->problems.at(0), HasSubstr("PCI Express capability at 0xf8 is cut off"));

  // A short read (128 bytes, what a CardBus bridge shows an unprivileged reader) that ends
  // inside the capability's registers.
  auto small = Crafted(128).put8(0x34, 0x78).cap(0x78, kCapPciExpress, 0).parse();
  ASSERT_TRUE(small);
  EXPECT_FALSE(small->pcie);
  EXPECT_THAT(small->problems.at(0), HasSubstr("cut off by the end of the 128-byte space"));
}

TEST(ConfigSpaceTest, ExtendedListLoopAndBadPointersStop) {
  auto loop = Crafted().ext(0x100, kExtCapAer, 1, 0x200).ext(0x200, kExtCapAcs, 1, 0x100).parse();
  ASSERT_TRUE(loop);
  EXPECT_EQ(caps_of(*loop), (std::vector<Cap>{{0x100, kExtCapAer, true}, {0x200, kExtCapAcs, true}}));
  EXPECT_EQ(loop->problems.at(0),
            "extended capability list: the entry at 0x200 points back to 0x100 (a loop)");

  auto low = Crafted().ext(0x100, kExtCapAer, 1, 0x0c0).parse();
  ASSERT_TRUE(low);
  EXPECT_EQ(low->capabilities.size(), 1u);
  EXPECT_THAT(low->problems.at(0), HasSubstr("points to 0x0c0, below 0x100"));

  auto empty = Crafted().ext(0x100, kExtCapAer, 1, 0x300).parse();
  ASSERT_TRUE(empty);
  EXPECT_THAT(empty->problems.at(0), HasSubstr("points to 0x300, which is empty"));

  auto ones = Crafted().ext(0x100, kExtCapAer, 1, 0x300).put32(0x300, 0xffffffff).parse();
  ASSERT_TRUE(ones);
  EXPECT_THAT(ones->problems.at(0), HasSubstr("which reads as all ones"));

  // A read of 300 bytes: the chain leads past its end.
  auto truncated = Crafted(300).ext(0x100, kExtCapAer, 1, 0x200).parse();
  ASSERT_TRUE(truncated);
  EXPECT_EQ(truncated->capabilities.size(), 1u);
  EXPECT_THAT(truncated->problems.at(0), HasSubstr("points to 0x200, beyond the 300 bytes read"));

  // Unaligned pointers are masked like the kernel's PCI_EXT_CAP_NEXT.
  auto unaligned = Crafted().ext(0x100, kExtCapAer, 1, 0x203).ext(0x200, kExtCapAri, 1, 0).parse();
  ASSERT_TRUE(unaligned);
  EXPECT_EQ(caps_of(*unaligned), (std::vector<Cap>{{0x100, kExtCapAer, true}, {0x200, kExtCapAri, true}}));
  EXPECT_THAT(unaligned->problems, IsEmpty());
}

TEST(ConfigSpaceTest, ExtendedSpaceAllOnesOrZeroMeansNone) {
  // Linux reads a zero or all-ones first header as "no extended capabilities".
  auto ones = Crafted().put32(0x100, 0xffffffff).parse();
  ASSERT_TRUE(ones);
  EXPECT_THAT(ones->capabilities, IsEmpty());
  EXPECT_THAT(ones->problems, IsEmpty());
  auto zero = Crafted().parse();
  ASSERT_TRUE(zero);
  EXPECT_THAT(zero->capabilities, IsEmpty());
  EXPECT_THAT(zero->problems, IsEmpty());
}

TEST(ConfigSpaceTest, ExtendedListLengthIsBounded) {
  // 4-byte entries back to back: 960 fit, the walk stops after 480 like the kernel's.
  Crafted c;
  for (size_t at = 0x100; at < 0x1000; at += 4)
    c.ext(at, 0x0b, 1, static_cast<uint16_t>(at + 4 < 0x1000 ? at + 4 : 0));
  auto cs = c.parse();
  ASSERT_TRUE(cs);
  EXPECT_EQ(cs->capabilities.size(), static_cast<size_t>(kMaxExtendedCapabilities));
  EXPECT_THAT(cs->problems.at(0), HasSubstr("more than 480 entries"));
}

}  // namespace
}  // namespace feos::pci
