#include "vmm/qemu/mmio_layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu_fixtures.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using namespace feos::vmm::qemu::testing;

model::PassthroughFunction function_with(std::vector<model::Bar> bars) {
  return {test::pci_address("0000:17:00.0"), "1234:5678", 0x030200, pci::IommuGroup(7), "", std::move(bars)};
}

TEST(BridgeWindows, H100NeedsA256GibWindow) {
  auto windows = bridge_windows(h100("0000:18:00.0", 40).functions);
  ASSERT_TRUE(windows) << windows.error().to_string();
  // 128 GiB + 32 MiB rounded up to a multiple of 128 GiB.
  EXPECT_EQ(windows->pref64, 256 * kGiB);
  EXPECT_EQ(windows->pref64_align, 128 * kGiB);
  // BAR0 is 64-bit but not prefetchable: it goes to the non-prefetchable window below 4 GiB.
  EXPECT_EQ(windows->mmio32, 16 * kMiB);
}

TEST(BridgeWindows, ConsumerCardFunctionsShareTheWindows) {
  auto windows = bridge_windows(rtx4090().functions);
  ASSERT_TRUE(windows) << windows.error().to_string();
  // 256 MiB + 32 MiB + 256 KiB + 64 KiB -> 512 MiB (a multiple of 256 MiB).
  EXPECT_EQ(windows->pref64, 512 * kMiB);
  EXPECT_EQ(windows->pref64_align, 256 * kMiB);
  // 16 MiB + 16 KiB + 16 KiB -> 32 MiB (a multiple of 16 MiB); the I/O BAR takes no MMIO.
  EXPECT_EQ(windows->mmio32, 32 * kMiB);
}

TEST(BridgeWindows, SmallWindowsHaveTheBridgeGranularity) {
  auto windows = bridge_windows({function_with({mem32(0, 4096), mem64_pref(2, 16 * 1024)})});
  ASSERT_TRUE(windows);
  EXPECT_EQ(windows->mmio32, kMiB);
  EXPECT_EQ(windows->pref64, kMiB);
  EXPECT_EQ(windows->pref64_align, kMiB);
}

TEST(BridgeWindows, PackingAlignsEachBarToItsSize) {
  // 64 MiB, 32 MiB, 32 MiB, 1 MiB: 129 MiB packed, rounded up to a multiple of 64 MiB.
  auto windows = bridge_windows({function_with({mem64_pref(0, 32 * kMiB), mem64_pref(2, kMiB),
                                                mem64_pref(4, 64 * kMiB)}),
                                 function_with({mem64_pref(0, 32 * kMiB)})});
  ASSERT_TRUE(windows);
  EXPECT_EQ(windows->pref64, 192 * kMiB);
  EXPECT_EQ(windows->mmio32, 0u);
}

TEST(BridgeWindows, A32BitPrefetchableBarKeepsThePrefetchableWindowBelow4Gib) {
  model::Bar pref32{1, 64 * kMiB, false, true, false};
  auto windows = bridge_windows({function_with({mem32(0, 16 * kMiB), pref32}),
                                 function_with({mem64_pref(0, 256 * kMiB)})});
  ASSERT_TRUE(windows);
  EXPECT_EQ(windows->pref64, 0u);
  EXPECT_EQ(windows->pref64_align, 0u);
  EXPECT_EQ(windows->mmio32, 16 * kMiB + 512 * kMiB);
}

TEST(BridgeWindows, RejectsImpossibleBars) {
  auto bad = bridge_windows({function_with({mem64_pref(1, 3 * kMiB)})});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "function 0000:17:00.0 BAR 1: size 3145728 is not a power of two");
  bad = bridge_windows({function_with({mem64_pref(1, uint64_t{1} << 53)})});
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("exceed a 52-bit address space"));
}

TEST(AddressLayout, NoDevicesKeepsTheDefaultHole) {
  auto layout = plan_address_layout(512 * kMiB, {});
  ASSERT_TRUE(layout);
  EXPECT_EQ(layout->hole64_needed, 0u);
  EXPECT_TRUE(layout->hole64_is_default);
  EXPECT_EQ(layout->hole64_size, 32 * kGiB);
  // All RAM below 4 GiB: the hole starts at 4 GiB.
  EXPECT_EQ(layout->hole64_start, 4 * kGiB);
  EXPECT_EQ(layout->address_end, 36 * kGiB);
  EXPECT_EQ(layout->phys_bits, 40);
}

TEST(AddressLayout, RamSplitsAt2GibFrom2Point75Gib) {
  // qemu 7.2: below 0xB0000000 all RAM is low; from there on, 2 GiB low and the rest at 4 GiB.
  EXPECT_EQ(plan_address_layout(0xB0000000 - kMiB, {})->hole64_start, 4 * kGiB);
  EXPECT_EQ(plan_address_layout(0xB0000000, {})->hole64_start, 5 * kGiB);  // 4 + 0.75, rounded
  EXPECT_EQ(plan_address_layout(8 * kGiB, {})->hole64_start, 10 * kGiB);
}

TEST(AddressLayout, EightH100s) {
  std::vector<BridgeWindows> ports;
  for (const auto& gpu : hgx_h100s(8)) ports.push_back(*bridge_windows(gpu.functions));
  auto layout = plan_address_layout(1 * kTiB, ports);
  ASSERT_TRUE(layout) << layout.error().to_string();
  EXPECT_EQ(layout->hole64_needed, 2176 * kGiB);  // 8 x 256 GiB + 128 GiB
  EXPECT_FALSE(layout->hole64_is_default);
  EXPECT_EQ(layout->mmio32_needed, 128 * kMiB);
  EXPECT_EQ(layout->hole64_start, 2046 * kGiB);  // 1 TiB + 1022 GiB of high RAM
  EXPECT_EQ(layout->address_end, 4222 * kGiB);
  EXPECT_EQ(layout->phys_bits, 43);
}

TEST(AddressLayout, AmdRelocationStartsWhereTheHoleReachesHyperTransport) {
  // With 1 GiB RAM the hole starts at 4 GiB; qemu 7.2 moves it to 1 TiB once start + size - 1
  // reaches 0xFD00000000 (1012 GiB): a 1008 GiB hole stays, a 1009 GiB one moves (both checked
  // against qemu-system-x86_64 7.2 -cpu max).
  BridgeWindows stays{1008 * kGiB - kGiB, kGiB, 0};  // + 1 GiB slack = 1008 GiB
  auto layout = plan_address_layout(kGiB, {stays});
  ASSERT_TRUE(layout);
  EXPECT_EQ(layout->hole64_size, 1008 * kGiB);
  EXPECT_EQ(layout->hole64_start, 4 * kGiB);
  BridgeWindows moves{1009 * kGiB - kGiB, kGiB, 0};
  layout = plan_address_layout(kGiB, {moves});
  ASSERT_TRUE(layout);
  EXPECT_EQ(layout->hole64_start, kTiB);
  EXPECT_EQ(layout->address_end, kTiB + 1009 * kGiB);
  EXPECT_EQ(layout->phys_bits, 41);
}

TEST(AddressLayout, PhysBitsCoverTheLastAddress) {
  // A hole ending exactly at 2^41 needs 41 bits; one more GiB needs 42.
  BridgeWindows exact{1023 * kGiB, kGiB, 0};  // + 1 GiB slack, at 1 TiB
  auto layout = plan_address_layout(kGiB, {exact});
  ASSERT_TRUE(layout);
  ASSERT_EQ(layout->hole64_start, kTiB);
  EXPECT_EQ(layout->address_end, 2048 * kGiB);
  EXPECT_EQ(layout->phys_bits, 41);
  BridgeWindows more{exact.pref64 + kGiB, kGiB, 0};
  EXPECT_EQ(plan_address_layout(kGiB, {more})->phys_bits, 42);
}

TEST(AddressLayout, Mmio32BudgetIsInclusive) {
  BridgeWindows fits{0, 0, kMmio32Budget};
  EXPECT_TRUE(plan_address_layout(kGiB, {fits}));
  BridgeWindows over{0, 0, kMmio32Budget + kMiB};
  auto layout = plan_address_layout(kGiB, {over});
  ASSERT_FALSE(layout);
  EXPECT_EQ(layout.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(layout.error().message, HasSubstr("need 749 MiB of MMIO below 4 GiB"));
  EXPECT_THAT(layout.error().message, HasSubstr("more than the 748 MiB"));
}

// OVMF's aperture: the windows rounded up to a power of two, placed at the end of RAM rounded
// up to that size (mmio_layout.h).
TEST(UefiAperture, OneH100) {
  auto layout = plan_address_layout(64 * kGiB, {*bridge_windows(hgx_h100s(1)[0].functions)});
  ASSERT_TRUE(layout);
  auto aperture = plan_uefi_aperture(*layout);
  ASSERT_TRUE(aperture) << aperture.error().to_string();
  EXPECT_EQ(aperture->size, 512 * kGiB);  // 384 GiB of windows
  EXPECT_TRUE(aperture->needs_fw_cfg);
  EXPECT_EQ(aperture->base, 512 * kGiB);  // RAM ends at 66 GiB
  EXPECT_EQ(aperture->phys_bits, 40);     // ends at 1 TiB
}

TEST(UefiAperture, EightH100s) {
  std::vector<BridgeWindows> ports;
  for (const auto& gpu : hgx_h100s(8)) ports.push_back(*bridge_windows(gpu.functions));
  auto layout = plan_address_layout(1 * kTiB, ports);
  ASSERT_TRUE(layout);
  auto aperture = plan_uefi_aperture(*layout);
  ASSERT_TRUE(aperture) << aperture.error().to_string();
  EXPECT_EQ(aperture->size, 4 * kTiB);  // 2176 GiB of windows
  EXPECT_EQ(aperture->base, 4 * kTiB);  // RAM ends at 2046 GiB (relocated to 1 TiB)
  EXPECT_EQ(aperture->phys_bits, 43);   // ends at 8 TiB
}

TEST(UefiAperture, SmallWindowsKeepOvmfsDefault) {
  auto layout = plan_address_layout(8 * kGiB, {*bridge_windows(rtx4090().functions)});
  ASSERT_TRUE(layout);
  auto aperture = plan_uefi_aperture(*layout);
  ASSERT_TRUE(aperture);
  EXPECT_EQ(aperture->size, kOvmfDefaultAperture);
  EXPECT_FALSE(aperture->needs_fw_cfg);
  EXPECT_EQ(aperture->base, 32 * kGiB);  // RAM ends at 10 GiB
  EXPECT_EQ(aperture->phys_bits, 40);    // the floor
}

TEST(UefiAperture, BeyondFiftyTwoBitsIsRefused) {
  AddressLayout layout;
  layout.hole64_needed = (uint64_t{1} << 51) + kGiB;  // rounds up to 2^52, placed at 2^52
  layout.hole64_start = 3 * kTiB;
  layout.phys_bits = 51;
  auto aperture = plan_uefi_aperture(layout);
  ASSERT_FALSE(aperture);
  EXPECT_EQ(aperture.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(aperture.error().message, ::testing::HasSubstr("needs 53 physical address bits; the limit is 52"));
}

TEST(FitCards, NoCardsFitTrivially) {
  model::FirmwareFit fit = fit_cards(64 * kGiB, false, 46, {});
  EXPECT_EQ(fit.fit, 0);
  EXPECT_EQ(fit.phys_bits_needed, 0);
  EXPECT_EQ(fit.limit, "");
}

// fit_cards() counts what a start would not refuse: n cards plan within the host's bits, n + 1 not.
TEST(FitCards, TheCountIsTheLargestStartWithinTheHostsBits) {
  const auto cards = hgx_h100s(8);
  for (int host_bits : {40, 41, 42, 46}) {
    for (bool uefi : {false, true}) {
      SCOPED_TRACE(std::to_string(host_bits) + (uefi ? " UEFI" : " BIOS"));
      model::FirmwareFit fit = fit_cards(251 * kGiB, uefi, host_bits, cards);
      auto needs = [&](size_t n) {
        std::vector<BridgeWindows> ports;
        for (size_t i = 0; i < n; ++i) ports.push_back(*bridge_windows(cards[i].functions));
        return plan_guest_address_space(251 * kGiB, ports, uefi)->phys_bits;
      };
      ASSERT_GE(fit.fit, 1);
      EXPECT_EQ(fit.phys_bits_needed, needs(fit.fit));
      EXPECT_LE(fit.phys_bits_needed, host_bits);
      if (fit.fit < 8) {
        EXPECT_GT(needs(fit.fit + 1), host_bits);
        EXPECT_THAT(fit.limit, HasSubstr(std::to_string(fit.fit + 1) + " GPU(s) with 64-bit windows of"));
        EXPECT_THAT(fit.limit, HasSubstr("the host CPU has " + std::to_string(host_bits)));
      } else {
        EXPECT_EQ(fit.limit, "");
      }
    }
  }
  // Without a host bound (tcg, or bits unknown) all eight fit.
  EXPECT_EQ(fit_cards(251 * kGiB, true, 0, cards).fit, 8);
}

TEST(FitCards, ACardThatCannotBePlannedEndsTheCountWithItsReason) {
  auto cards = hgx_h100s(3);
  cards[1].functions[0].bars[1].size = 100 * kGiB;  // not a power of two
  model::FirmwareFit fit = fit_cards(8 * kGiB, false, 0, cards);
  EXPECT_EQ(fit.fit, 1);
  EXPECT_THAT(fit.limit, HasSubstr("0000:2a:00.0"));
}

TEST(FormatBytes, PicksTheLargestExactUnit) {
  EXPECT_EQ(format_bytes(0), "0 bytes");
  EXPECT_EQ(format_bytes(100), "100 bytes");
  EXPECT_EQ(format_bytes(16 * 1024), "16 KiB");
  EXPECT_EQ(format_bytes(128 * kGiB + 32 * kMiB), "131104 MiB");
  EXPECT_EQ(format_bytes(2 * kTiB), "2 TiB");
}

}  // namespace
}  // namespace feos::vmm::qemu
