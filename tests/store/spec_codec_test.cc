#include "store/spec_codec.h"

#include <cctype>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "spec_samples.h"

namespace feos::store {
namespace {

using nlohmann::json;
using testing::expect_specs_equal;
using testing::full_spec;

TEST(SpecCodecTest, FullSpecRoundTrips) {
  const model::VmSpec spec = full_spec();
  auto text = encode_spec(spec);
  ASSERT_TRUE(text) << text.error().to_string();
  auto decoded = decode_spec(*text);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  expect_specs_equal(spec, *decoded);
}

TEST(SpecCodecTest, DefaultSpecRoundTrips) {
  const model::VmSpec spec;  // ignition absent, no disks or nets, empty strings
  auto text = encode_spec(spec);
  ASSERT_TRUE(text) << text.error().to_string();
  EXPECT_TRUE(json::parse(*text).at("ignition").is_null());
  auto decoded = decode_spec(*text);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  expect_specs_equal(spec, *decoded);
}

TEST(SpecCodecTest, IntegerLimitsRoundTrip) {
  model::VmSpec spec = full_spec();
  spec.cpus.boot_vcpus = std::numeric_limits<uint32_t>::max();
  spec.cpus.max_vcpus = 0;
  spec.memory.size_mib = std::numeric_limits<uint64_t>::max();
  auto decoded = decode_spec(encode_spec(spec).value());
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  expect_specs_equal(spec, *decoded);
}

// The stored format itself: rows written by earlier builds must keep decoding, so a change here
// needs a schema migration that rewrites stored specs.
TEST(SpecCodecTest, StoredFormatIsStable) {
  const std::string golden =
      R"({"boot":{"cmdline":"console=ttyS0 root=/dev/vda1 quiet",)"
      R"("initramfs":"/boot/initrd.img-6.1","kernel":"/boot/vmlinuz-6.1"},)"
      R"("cpus":{"boot_vcpus":4,"max_vcpus":8},)"
      R"("disks":[{"device_id":"data0","format":"qcow2","path":"/var/lib/feos/disks/data0.qcow2","readonly":false},)"
      R"({"device_id":"seed","format":"","path":"/var/lib/feos/disks/sé\"ed\n.raw","readonly":true}],)"
      R"("firmware":{"kind":"uefi","secure_boot":true},)"
      R"("gpu_count":{"count":2,"model":"H200","p2p":true},)"
      R"("gpu_p2p":{"cliques":[{"gpus":["0000:17:00.0","0000:b3:00.0"]}],"mode":"explicit"},)"
      R"("gpus":[{"address":"0000:17:00.0","boot_vga":false,"rombar":"off"},)"
      R"({"address":"0000:65:00.0","boot_vga":true,"rombar":"default"},)"
      R"({"address":"0000:b3:00.0","boot_vga":false,"rombar":"on"}],)"
      R"("guest_numa":"off",)"
      R"("ignition":"{\"ignition\":{\"version\":\"3.4.0\"}}",)"
      R"("image_format":"raw",)"
      R"("image_path":"/var/lib/feos/images/3f2a/disk.raw",)"
      R"("image_ref":"ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0",)"
      R"("memory":{"hugepage_size":"1G","hugepages":true,"size_mib":65536},)"
      R"("nets":[{"device_id":"net0","mac":"52:54:00:12:34:56","tap_created":false,"tap_name":"tap-vm1-0"},)"
      R"({"device_id":"net1","mac":"","tap_created":true,"tap_name":"tap-vm1-1"}]})";
  auto text = encode_spec(full_spec());
  ASSERT_TRUE(text) << text.error().to_string();
  EXPECT_EQ(*text, golden);
  auto decoded = decode_spec(golden);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  expect_specs_equal(full_spec(), *decoded);
}

// Only specs that asked for GPUs by count carry "gpu_count"; records without it (all written
// before it existed) have none.
TEST(SpecCodecTest, GpuCountIsWrittenOnlyWhenAsked) {
  model::VmSpec spec = full_spec();
  spec.gpu_count.reset();
  auto text = encode_spec(spec);
  ASSERT_TRUE(text) << text.error().to_string();
  EXPECT_EQ(text->find("gpu_count"), std::string::npos) << *text;
  auto decoded = decode_spec(*text);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  EXPECT_FALSE(decoded->gpu_count);
  auto bad = decode_spec(R"({"gpu_count":{"count":-1,"model":"","p2p":false}})");
  EXPECT_FALSE(bad);
}

// NICs stored before feosd removed the taps it created have no "tap_created": their taps stay.
TEST(SpecCodecTest, NicsWithoutTapCreatedKeepTheirTaps) {
  auto text = encode_spec(full_spec());
  ASSERT_TRUE(text) << text.error().to_string();
  std::string old = *text;
  for (const std::string key : {R"("tap_created":false,)", R"("tap_created":true,)"}) {
    auto at = old.find(key);
    ASSERT_NE(at, std::string::npos) << old;
    old.erase(at, key.size());
  }
  auto decoded = decode_spec(old);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  ASSERT_EQ(decoded->nets.size(), 2u);
  EXPECT_FALSE(decoded->nets[0].tap_created);
  EXPECT_FALSE(decoded->nets[1].tap_created);
  std::string bad = *text;
  bad.replace(bad.find(R"("tap_created":true)"), 18, R"("tap_created":1)");
  EXPECT_FALSE(decode_spec(bad));
}

// Records written before firmware was a choice have no "firmware" key: they boot BIOS, as they
// did; an unknown firmware name is refused.
TEST(SpecCodecTest, RecordsWithoutFirmwareDecodeAsBios) {
  model::VmSpec bios = full_spec();
  bios.firmware = {};
  auto text = encode_spec(bios);
  ASSERT_TRUE(text);
  const std::string key = R"("firmware":{"kind":"bios","secure_boot":false},)";
  auto at = text->find(key);
  ASSERT_NE(at, std::string::npos) << *text;
  std::string old = *text;
  old.erase(at, key.size());
  auto decoded = decode_spec(old);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  expect_specs_equal(bios, *decoded);
  std::string unknown = *text;
  unknown.replace(unknown.find(R"("kind":"bios")"), 13, R"("kind":"coreboot")");
  auto refused = decode_spec(unknown);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, R"(spec.firmware.kind: unknown firmware "coreboot" (bios or uefi))");
}

// Records written before disk formats were recorded have no format keys: they read as not
// recorded (the hypervisor detects the format at start); an unknown format name is refused.
TEST(SpecCodecTest, RecordsWithoutFormatsDecodeAsUnknown) {
  auto full = spec_to_json(full_spec());
  full.erase("image_format");
  for (auto& disk : full["disks"]) disk.erase("format");
  auto decoded = spec_from_json(full);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  EXPECT_EQ(decoded->image_format, model::DiskFormat::kUnknown);
  EXPECT_EQ(decoded->disks[0].format, model::DiskFormat::kUnknown);
  full["disks"][0]["format"] = "vmdk";
  auto bad = spec_from_json(full);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "spec.disks[0].format: unknown disk format \"vmdk\" (raw, qcow2 or \"\")");
}

struct BadCase {
  const char* name;
  std::function<void(json&)> damage;
  const char* message;
};

class SpecDecodeErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SpecDecodeErrorTest, NamesTheField) {
  json j = spec_to_json(full_spec());
  GetParam().damage(j);
  auto decoded = spec_from_json(j);
  ASSERT_FALSE(decoded) << "decoded despite: " << GetParam().name;
  EXPECT_EQ(decoded.error().code, Code::kInvalidArgument);
  EXPECT_EQ(decoded.error().message, GetParam().message);
  // The text path reports the same.
  auto from_text = decode_spec(j.dump());
  ASSERT_FALSE(from_text);
  EXPECT_EQ(from_text.error().message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Strict, SpecDecodeErrorTest,
    ::testing::Values(
        BadCase{"top level array", [](json& j) { j = json::array(); },
                "spec: expected an object, got array"},
        BadCase{"missing nested field", [](json& j) { j["cpus"].erase("max_vcpus"); },
                "spec.cpus: missing field max_vcpus"},
        BadCase{"missing top field", [](json& j) { j.erase("boot"); },
                "spec: missing field boot"},
        BadCase{"string for integer", [](json& j) { j["cpus"]["boot_vcpus"] = "4"; },
                "spec.cpus.boot_vcpus: expected an unsigned 32-bit integer, got string"},
        BadCase{"negative integer", [](json& j) { j["cpus"]["boot_vcpus"] = -1; },
                "spec.cpus.boot_vcpus: expected an unsigned 32-bit integer, "
                "got negative integer -1"},
        BadCase{"u32 overflow", [](json& j) { j["cpus"]["max_vcpus"] = 4294967296ULL; },
                "spec.cpus.max_vcpus: expected an unsigned 32-bit integer, got integer 4294967296"},
        BadCase{"fraction", [](json& j) { j["memory"]["size_mib"] = 2.5; },
                "spec.memory.size_mib: expected an unsigned 64-bit integer, "
                "got non-integer number 2.5"},
        BadCase{"string for bool", [](json& j) { j["disks"][1]["readonly"] = "yes"; },
                "spec.disks[1].readonly: expected a boolean, got string"},
        BadCase{"number for string", [](json& j) { j["nets"][1]["mac"] = 7; },
                "spec.nets[1].mac: expected a string, got integer 7"},
        BadCase{"unknown nested key", [](json& j) { j["nets"][0]["bridge"] = "br0"; },
                "spec.nets[0]: unknown field \"bridge\""},
        BadCase{"unknown top key", [](json& j) { j["hostdevs"] = json::array(); },
                "spec: unknown field \"hostdevs\""},
        BadCase{"missing gpus", [](json& j) { j.erase("gpus"); }, "spec: missing field gpus"},
        BadCase{"unknown rombar", [](json& j) { j["gpus"][2]["rombar"] = "maybe"; },
                "spec.gpus[2].rombar: expected \"default\", \"on\" or \"off\", got \"maybe\""},
        BadCase{"rombar as number", [](json& j) { j["gpus"][0]["rombar"] = 1; },
                "spec.gpus[0].rombar: expected a string, got integer 1"},
        BadCase{"boot_vga as string", [](json& j) { j["gpus"][1]["boot_vga"] = "true"; },
                "spec.gpus[1].boot_vga: expected a boolean, got string"},
        BadCase{"gpu address not an address", [](json& j) { j["gpus"][1]["address"] = "65:00"; },
                "spec.gpus[1].address: invalid PCI address '65:00': wrong length (expected "
                "DDDD:BB:DD.F or BB:DD.F, hex)"},
        BadCase{"gpu address as number", [](json& j) { j["gpus"][0]["address"] = 23; },
                "spec.gpus[0].address: expected a string, got integer 23"},
        BadCase{"unknown gpu key", [](json& j) { j["gpus"][0]["xvga"] = true; },
                "spec.gpus[0]: unknown field \"xvga\""},
        BadCase{"ignition wrong type", [](json& j) { j["ignition"] = false; },
                "spec.ignition: expected a string or null, got boolean"},
        BadCase{"object for list", [](json& j) { j["disks"] = json::object(); },
                "spec.disks: expected an array, got object"},
        BadCase{"string in list", [](json& j) { j["nets"][0] = "net0"; },
                "spec.nets[0]: expected an object, got string"},
        BadCase{"null for object", [](json& j) { j["boot"] = nullptr; },
                "spec.boot: expected an object, got null"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      std::string name = info.param.name;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

// spec_from_json also takes a json built in code, where non-negative integers may be signed.
TEST(SpecCodecTest, AcceptsSignedNonNegativeIntegers) {
  json j = spec_to_json(full_spec());
  j["cpus"]["boot_vcpus"] = 2;  // int: stored as number_integer
  j["memory"]["size_mib"] = int64_t{1024};
  auto decoded = spec_from_json(j);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  EXPECT_EQ(decoded->cpus.boot_vcpus, 2u);
  EXPECT_EQ(decoded->memory.size_mib, 1024u);
}

TEST(SpecCodecTest, RejectsTextThatIsNotJson) {
  for (const char* text : {"", "{", "not json", "{\"cpus\":}"}) {
    auto decoded = decode_spec(text);
    ASSERT_FALSE(decoded) << text;
    EXPECT_EQ(decoded.error().code, Code::kInvalidArgument);
    EXPECT_NE(decoded.error().message.find("spec: not valid JSON"), std::string::npos)
        << decoded.error().message;
  }
  // Invalid UTF-8 inside a JSON string is a parse error too.
  std::string text = encode_spec(full_spec()).value();
  text.replace(text.find("data0.qcow2"), 1, "\xff");
  EXPECT_FALSE(decode_spec(text));
}

TEST(SpecCodecTest, EncodeRejectsInvalidUtf8NamingTheField) {
  const char* bad_strings[] = {
      "\xff",              // never valid
      "abc\xc3",           // truncated sequence
      "\xc0\xaf",          // overlong "/"
      "\xed\xa0\x80",      // UTF-16 surrogate
      "\xf4\x90\x80\x80",  // above U+10FFFF
  };
  for (const char* bad : bad_strings) {
    model::VmSpec spec = full_spec();
    spec.disks[1].path = bad;
    auto text = encode_spec(spec);
    ASSERT_FALSE(text) << "accepted bytes of length " << std::string(bad).size();
    EXPECT_EQ(text.error().code, Code::kInvalidArgument);
    EXPECT_EQ(text.error().message, "spec.disks[1].path: string is not valid UTF-8");
  }
  model::VmSpec spec = full_spec();
  spec.ignition = "\x80";
  auto text = encode_spec(spec);
  ASSERT_FALSE(text);
  EXPECT_EQ(text.error().message, "spec.ignition: string is not valid UTF-8");

  // Multi-byte characters up to 4 bytes are fine.
  spec = full_spec();
  spec.boot.cmdline = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x96\xa5";
  auto good = encode_spec(spec);
  ASSERT_TRUE(good) << good.error().to_string();
  EXPECT_EQ(decode_spec(*good).value().boot.cmdline, spec.boot.cmdline);
}

TEST(AssignedGpusCodecTest, RoundTrips) {
  const auto gpus = testing::full_assigned_gpus();
  auto text = encode_assigned_gpus(gpus);
  ASSERT_TRUE(text) << text.error().to_string();
  auto decoded = decode_assigned_gpus(*text);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  testing::expect_assigned_gpus_equal(gpus, *decoded);
  auto empty = decode_assigned_gpus(encode_assigned_gpus({}).value());
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(AssignedGpusCodecTest, StoredFormatIsStable) {
  std::vector<model::AssignedGpu> gpus(1);
  gpus[0].request = {.address = test::pci_address("0000:17:00.0"), .rombar = model::RomBar::kOn, .boot_vga = true};
  gpus[0].functions = {{.address = test::pci_address("0000:17:00.0"),
                        .id = "10de:2330",
                        .class_code = 0x030200,
                        .iommu_group = pci::IommuGroup(41),
                        .original_driver = "nvidia",
                        .bars = {{.index = 1, .size = 137438953472ull, .is_64bit = true,
                                  .prefetchable = true, .is_io = false}}}};
  gpus[0].numa_node = -1;
  const std::string golden =
      R"([{"functions":[{"address":"0000:17:00.0","bars":[{"index":1,"is_64bit":true,)"
      R"("is_io":false,"prefetchable":true,"size":137438953472}],"class_code":197120,)"
      R"("id":"10de:2330","iommu_group":"41","original_driver":"nvidia"}],"group_peers":[],)"
      R"("numa_node":-1,"request":{"address":"0000:17:00.0","boot_vga":true,"rombar":"on"}}])";
  EXPECT_EQ(encode_assigned_gpus(gpus).value(), golden);
  auto decoded = decode_assigned_gpus(golden);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  testing::expect_assigned_gpus_equal(gpus, *decoded);
}

TEST(AssignedGpusCodecTest, APeerPathIsStoredWhenKnown) {
  std::vector<model::AssignedGpu> gpus(1);
  gpus[0].request.address = test::pci_address("0000:18:00.0");
  gpus[0].peer_path = {.pcie_root = "pci0000:15", .pcie_switch = test::pci_address("0000:16:00.0"), .nvlink = false,
                       .cap_slot = model::GpudirectSlot::kD4};
  const std::string golden =
      R"([{"functions":[],"group_peers":[],"numa_node":-1,)"
      R"("peer_path":{"cap_slot":"d4","nvlink":false,"pcie_root":"pci0000:15","pcie_switch":"0000:16:00.0"},)"
      R"("request":{"address":"0000:18:00.0","boot_vga":false,"rombar":"default"}}])";
  EXPECT_EQ(encode_assigned_gpus(gpus).value(), golden);
  auto decoded = decode_assigned_gpus(golden);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  testing::expect_assigned_gpus_equal(gpus, *decoded);
  std::string bad = golden;
  bad.replace(bad.find("\"d4\""), 4, "\"e0\"");
  auto refused = decode_assigned_gpus(bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("unknown slot \"e0\""), std::string::npos) << refused.error().message;
}

TEST(AssignedGpusCodecTest, DecodeIsStrict) {
  struct Case {
    std::function<void(json&)> damage;
    std::string message;
  };
  const Case cases[] = {
      {[](json& j) { j = json::object(); }, "gpus: expected an array, got object"},
      {[](json& j) { j[0] = 3; }, "gpus[0]: expected an object, got integer 3"},
      {[](json& j) { j[0].erase("numa_node"); }, "gpus[0]: missing field numa_node"},
      {[](json& j) { j[0]["numa_node"] = 2147483648LL; },
       "gpus[0].numa_node: expected a 32-bit integer, got integer 2147483648"},
      {[](json& j) { j[0]["numa_node"] = -2147483649LL; },
       "gpus[0].numa_node: expected a 32-bit integer, got negative integer -2147483649"},
      {[](json& j) { j[0]["functions"][1]["bars"][0]["size"] = "16k"; },
       "gpus[0].functions[1].bars[0].size: expected an unsigned 64-bit integer, got string"},
      {[](json& j) { j[0]["fabric"][0]["iommu_group"] = "x"; },
       "gpus[0].fabric[0].iommu_group: invalid IOMMU group 'x' (expected a number)"},
      {[](json& j) { j[0]["group_peers"][0]["class_code"] = -1; },
       "gpus[0].group_peers[0].class_code: expected an unsigned 32-bit integer, got negative "
       "integer -1"},
      {[](json& j) { j[0]["functions"][0]["bars"][2]["is_io"] = 1; },
       "gpus[0].functions[0].bars[2].is_io: expected a boolean, got integer 1"},
      {[](json& j) { j[0]["request"]["rombar"] = "yes"; },
       "gpus[0].request.rombar: expected \"default\", \"on\" or \"off\", got \"yes\""},
      {[](json& j) { j[0]["group_peers"][0]["address"] = "0000:18:00.0/../x"; },
       "gpus[0].group_peers[0].address: invalid PCI address '0000:18:00.0/../x': wrong length "
       "(expected DDDD:BB:DD.F or BB:DD.F, hex)"},
      {[](json& j) { j[0]["functions"][1]["iommu_group"] = "../41"; },
       "gpus[0].functions[1].iommu_group: invalid IOMMU group '../41' (expected a number)"},
      {[](json& j) { j[1]["functions"][0]["driver"] = "x"; },
       "gpus[1].functions[0]: unknown field \"driver\""},
      {[](json& j) { j[1]["request"] = nullptr; },
       "gpus[1].request: expected an object, got null"},
  };
  for (const Case& c : cases) {
    json j = assigned_gpus_to_json(testing::full_assigned_gpus());
    c.damage(j);
    auto decoded = assigned_gpus_from_json(j);
    ASSERT_FALSE(decoded) << "decoded despite damage, want: " << c.message;
    EXPECT_EQ(decoded.error().code, Code::kInvalidArgument);
    EXPECT_EQ(decoded.error().message, c.message);
    auto from_text = decode_assigned_gpus(j.dump());
    ASSERT_FALSE(from_text);
    EXPECT_EQ(from_text.error().message, c.message);
  }
  auto not_json = decode_assigned_gpus("[{");
  ASSERT_FALSE(not_json);
  EXPECT_EQ(not_json.error().code, Code::kInvalidArgument);
  EXPECT_NE(not_json.error().message.find("gpus: not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace feos::store
