// The fast proto3 JSON printer must write exactly what protobuf's MessageToJsonString writes with
// feosctl's options, for every kind of field our APIs use.
#include "cli/proto_json.h"

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "cli/json_format.h"
#include "feos/vm/vmm/api/v1/vm.pb.h"
#include "feosd/v1/host.pb.h"

namespace feos::cli {
namespace {

namespace v1 = ::feos::vm::vmm::api::v1;
namespace hostv1 = ::feosd::v1;
using google::protobuf::Message;

std::string protobuf_json(const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &text, options).ok());
  return text;
}

std::string fast_json(const Message& message) {
  EXPECT_TRUE(proto_json_supported(*message.GetDescriptor())) << message.GetTypeName();
  std::string text;
  append_proto_json(message, /*pretty=*/false, text);
  // The pretty form must be the compact form laid out by indent_json.
  std::string pretty;
  append_proto_json(message, /*pretty=*/true, pretty);
  auto indented = indent_json(text);
  EXPECT_TRUE(indented.has_value()) << text;
  if (indented) {
    EXPECT_EQ(pretty, *indented) << message.ShortDebugString();
  }
  return text;
}

template <typename M>
M from_text(const std::string& text) {
  M message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

#define EXPECT_SAME_JSON(message) \
  EXPECT_EQ(fast_json(message), protobuf_json(message)) << (message).ShortDebugString()

TEST(ProtoJson, EmptyMessagesPrintTheirDefaults) {
  EXPECT_SAME_JSON(v1::VmInfo{});
  EXPECT_SAME_JSON(v1::VmConfig{});
  EXPECT_SAME_JSON(v1::StartVmResponse{});
  EXPECT_SAME_JSON(hostv1::ListPciDevicesResponse{});
  EXPECT_SAME_JSON(hostv1::PciDeviceInfo{});
  EXPECT_SAME_JSON(hostv1::CheckHostResponse{});
  EXPECT_EQ(fast_json(v1::StartVmResponse{}), "{}");
}

TEST(ProtoJson, FullVmInfoWithGpus) {
  EXPECT_SAME_JSON(from_text<v1::VmInfo>(R"pb(
    vm_id: "vm-a"
    state: VM_STATE_RUNNING
    state_reason: "started"
    pid: 4242
    created_unix_ms: -1795521300000
    config {
      cpus { boot_vcpus: 2 max_vcpus: 4294967295 }
      memory { size_mib: 18446744073709551615 hugepages: true }
      image_ref: "/var/lib/images/base.qcow2"
      disks { device_id: "data0" path: "/srv/data.img" readonly: true }
      disks { vfio_pci { bdf: "0000:05:00.0" } }
      disks {}
      net {
        device_id: "net0"
        tap { tap_name: "tap0" }
        mac_address: "52:54:00:12:34:56"
      }
      net { vfio_pci {} }
      ignition: ""
      boot { kernel: "/boot/vmlinuz" cmdline: "console=ttyS0" }
      gpus { address: "18:00.0" rombar: ROM_BAR_OFF boot_vga: true }
      gpus {}
    }
    gpus {
      request { address: "18:00.0" }
      functions {
        address: "0000:18:00.0"
        id: "10de:2330"
        class_code: 0x030200
        iommu_group: "59"
        original_driver: "nvidia"
        bars { index: 1 size: 137438953472 is_64bit: true prefetchable: true }
      }
      group_peers {}
      numa_node: -1
    }
  )pb"));
}

TEST(ProtoJson, PresenceFieldsComeLastInNumberOrder) {
  EXPECT_SAME_JSON(from_text<v1::StreamVmEventsRequest>(R"pb(vm_id: "x" tail_events: 0)pb"));
  EXPECT_SAME_JSON(from_text<v1::StreamVmEventsRequest>(R"pb(tail_id: "e" vm_id: "")pb"));
  EXPECT_SAME_JSON(from_text<v1::StreamVmEventsRequest>(R"pb(tail_seconds: -5)pb"));
  EXPECT_SAME_JSON(from_text<v1::CreateVmRequest>(R"pb(vm_id: "v"
                                                       config { ignition: "i" })pb"));
  EXPECT_EQ(fast_json(from_text<v1::StreamVmEventsRequest>(R"pb(tail_events: 3 vm_id: "x")pb")),
            R"({"with_component_id":"","vm_id":"x","tail_events":3})");
}

TEST(ProtoJson, UnknownEnumValueIsItsNumber) {
  v1::VmInfo vm;
  vm.set_state(static_cast<v1::VmState>(77));
  EXPECT_SAME_JSON(vm);
  hostv1::PciDeviceInfo device;
  device.set_status(static_cast<hostv1::DeviceStatus>(-3));
  EXPECT_SAME_JSON(device);
}

TEST(ProtoJson, BytesAreBase64) {
  for (const std::string& data :
       {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
        std::string("a\0\xff\xfe", 4), std::string(1000, '\x80')}) {
    v1::StreamVmConsoleResponse chunk;
    chunk.set_output(data);
    EXPECT_SAME_JSON(chunk);
  }
}

TEST(ProtoJson, InventoryOfAThousandDevices) {
  hostv1::ListPciDevicesResponse list;
  for (int i = 0; i < 1000; ++i) {
    hostv1::PciDeviceInfo& device = *list.add_devices();
    device.set_address("0000:" + std::to_string(i) + ":00.0");
    device.set_vendor_id("10de");
    device.set_device_name("GH100 [H100 SXM5 80GB]");
    device.set_class_code(static_cast<uint32_t>(i) << 8);
    device.add_iommu_group_members("0000:17:00.0");
    device.add_iommu_group_members("0000:18:00.0");
    device.set_numa_node(i % 3 - 1);
    device.add_bars()->set_size(uint64_t{1} << (i % 64));
    device.add_reset_methods("flr");
    device.set_status(static_cast<hostv1::DeviceStatus>(i % 4));
    device.set_is_gpu(i % 2 == 0);
  }
  EXPECT_EQ(fast_json(list), protobuf_json(list));
}

// Every valid code point, in one string, escaped exactly as protobuf escapes it.
TEST(ProtoJson, StringEscapingMatchesProtobufForEveryCodePoint) {
  std::string text;
  for (uint32_t cp = 0; cp <= 0x10ffff; ++cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    if (cp < 0x80) {
      text += static_cast<char>(cp);
    } else if (cp < 0x800) {
      text += static_cast<char>(0xc0 | (cp >> 6));
      text += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      text += static_cast<char>(0xe0 | (cp >> 12));
      text += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      text += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      text += static_cast<char>(0xf0 | (cp >> 18));
      text += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      text += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      text += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  hostv1::HostCheckItem item;
  item.set_detail(text);
  const std::string fast = fast_json(item);
  const std::string reference = protobuf_json(item);
  ASSERT_EQ(fast.size(), reference.size());
  // Find the first difference ourselves: gtest would print megabytes.
  auto [a, b] = std::mismatch(fast.begin(), fast.end(), reference.begin());
  EXPECT_TRUE(a == fast.end()) << "first difference at offset " << (a - fast.begin()) << ": "
                               << std::string(a, std::min(a + 16, fast.end())) << " vs "
                               << std::string(b, std::min(b + 16, reference.end()));
}

// Strings received over gRPC are valid UTF-8 (proto3 parsing checks); a locally built message
// may not be. Each invalid byte is dropped so the output stays valid JSON. (Protobuf 3.21 drops
// some and copies others, e.g. the overlong "\xc0\xaf", into its output.)
TEST(ProtoJson, InvalidUtf8BytesAreDropped) {
  const std::pair<std::string, std::string> cases[] = {
      {"a\xff"
       "b",
       "ab"},
      {"\xc3", ""},
      {"x\xc3(y", "x(y"},
      {"\xe2\x82", ""},
      {"\xc0\xaf", ""},
      {"\xed\xa0\x80z", "z"},
      {"\xf4\x90\x80\x80", ""},
      {"\xf0\x9f\x98", ""},
      {"ok \xf0\x9f\x98\x80", "ok \xf0\x9f\x98\x80"},
  };
  for (const auto& [text, kept] : cases) {
    hostv1::HostCheckItem item;
    item.set_name(text);
    EXPECT_EQ(fast_json(item), R"({"name":")" + kept + R"(","ok":false,"detail":""})");
  }
}

TEST(ProtoJson, WellKnownTypesAreLeftToProtobuf) {
  EXPECT_FALSE(proto_json_supported(*v1::VmEvent::descriptor()));  // google.protobuf.Any
  EXPECT_FALSE(proto_json_supported(*google::protobuf::Any::descriptor()));
  EXPECT_TRUE(proto_json_supported(*v1::ListVmsResponse::descriptor()));
  EXPECT_TRUE(proto_json_supported(*hostv1::ListPciDevicesResponse::descriptor()));
  EXPECT_TRUE(proto_json_supported(*hostv1::CheckHostResponse::descriptor()));
  EXPECT_TRUE(proto_json_supported(*v1::StreamVmConsoleResponse::descriptor()));
}

// Field kinds our protos do not use yet, through a message type built at run time.
class DynamicProtoJson : public ::testing::Test {
 protected:
  void SetUp() override {
    auto file = from_text<google::protobuf::FileDescriptorProto>(R"pb(
      name: "dyn.proto"
      package: "dyn"
      syntax: "proto3"
      enum_type {
        name: "Color"
        value { name: "COLOR_UNSPECIFIED" number: 0 }
        value { name: "RED" number: 1 }
      }
      message_type {
        name: "Node"
        field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
        field {
          name: "child"
          number: 2
          label: LABEL_OPTIONAL
          type: TYPE_MESSAGE
          type_name: ".dyn.Node"
        }
        field { name: "s64" number: 3 label: LABEL_OPTIONAL type: TYPE_SINT64 }
        field { name: "f64" number: 4 label: LABEL_OPTIONAL type: TYPE_FIXED64 }
        field { name: "sf32" number: 5 label: LABEL_OPTIONAL type: TYPE_SFIXED32 }
        field {
          name: "colors"
          number: 6
          label: LABEL_REPEATED
          type: TYPE_ENUM
          type_name: ".dyn.Color"
        }
        field { name: "blobs" number: 7 label: LABEL_REPEATED type: TYPE_BYTES }
        field { name: "counts" number: 8 label: LABEL_REPEATED type: TYPE_INT64 }
        field { name: "flags" number: 9 label: LABEL_REPEATED type: TYPE_BOOL }
        field {
          name: "kids"
          number: 10
          label: LABEL_REPEATED
          type: TYPE_MESSAGE
          type_name: ".dyn.Node"
        }
        field {
          name: "pick_text"
          number: 12
          label: LABEL_OPTIONAL
          type: TYPE_STRING
          oneof_index: 0
        }
        field {
          name: "pick_node"
          number: 11
          label: LABEL_OPTIONAL
          type: TYPE_MESSAGE
          type_name: ".dyn.Node"
          oneof_index: 0
        }
        field { name: "u32s" number: 13 label: LABEL_REPEATED type: TYPE_UINT32 }
        oneof_decl { name: "pick" }
      }
      message_type {
        name: "WithDouble"
        field { name: "ratio" number: 1 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
      }
      message_type {
        name: "HoldsDouble"
        field {
          name: "inner"
          number: 1
          label: LABEL_OPTIONAL
          type: TYPE_MESSAGE
          type_name: ".dyn.WithDouble"
        }
      }
      message_type {
        name: "WithMap"
        field {
          name: "labels"
          number: 1
          label: LABEL_REPEATED
          type: TYPE_MESSAGE
          type_name: ".dyn.WithMap.LabelsEntry"
        }
        nested_type {
          name: "LabelsEntry"
          field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
          field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
          options { map_entry: true }
        }
      }
    )pb");
    ASSERT_NE(pool_.BuildFile(file), nullptr);
  }

  std::unique_ptr<Message> make(const std::string& type, const std::string& text) {
    const google::protobuf::Descriptor* descriptor = pool_.FindMessageTypeByName(type);
    EXPECT_NE(descriptor, nullptr) << type;
    std::unique_ptr<Message> message(factory_.GetPrototype(descriptor)->New());
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, message.get())) << text;
    return message;
  }

  google::protobuf::DescriptorPool pool_;
  google::protobuf::DynamicMessageFactory factory_;
};

TEST_F(DynamicProtoJson, EveryScalarKindRecursionAndOneofs) {
  for (const char* text : {
           "",
           R"pb(name: "root"
                child {
                  name: "c"
                  child {}
                }
                s64: -9223372036854775808
                f64: 18446744073709551615
                sf32: -2147483648
                colors: RED
                colors: 5
                colors: COLOR_UNSPECIFIED
                blobs: ""
                blobs: "\377"
                counts: -1
                counts: 0
                flags: true
                flags: false
                kids {}
                kids { s64: 7 }
                pick_text: "t"
                u32s: 4294967295)pb",
           R"pb(pick_node { pick_node {} })pb",
           R"pb(pick_text: "")pb",
       }) {
    auto message = make("dyn.Node", text);
    EXPECT_SAME_JSON(*message);
  }
}

TEST_F(DynamicProtoJson, DoublesAndMapsAreLeftToProtobuf) {
  EXPECT_TRUE(proto_json_supported(*pool_.FindMessageTypeByName("dyn.Node")));
  EXPECT_FALSE(proto_json_supported(*pool_.FindMessageTypeByName("dyn.WithDouble")));
  EXPECT_FALSE(proto_json_supported(*pool_.FindMessageTypeByName("dyn.HoldsDouble")));
  EXPECT_FALSE(proto_json_supported(*pool_.FindMessageTypeByName("dyn.WithMap")));
}

}  // namespace
}  // namespace feos::cli
