// Reading back what build_argv() wrote, from a qemu's /proc/<pid>/cmdline.
#include "vmm/qemu/qemu_cmdline.h"

#include <gtest/gtest.h>

#include "vmm/qemu/argv_builder.h"

namespace feos::vmm::qemu {
namespace {

using namespace std::string_literals;

TEST(QemuCmdline, ReadsBackWhatTheBuilderWrote) {
  auto args = split_cmdline("/usr/bin/qemu\0-name\0guest=vm-1,debug-threads=on\0-accel\0kvm\0-pidfile\0/s/vms/vm-1/qemu.pid\0"
                            "-device\0vfio-pci,host=0000:18:00.0,id=f0,bus=rp0,addr=0x0.0\0-device\0virtio-blk-pci,drive=d\0"s);
  ASSERT_EQ(args.size(), 11u);
  auto identity = read_qemu_identity(args);
  ASSERT_TRUE(identity);
  EXPECT_EQ(identity->vm_id, "vm-1");
  EXPECT_EQ(identity->runtime_dir, "/s/vms/vm-1");
  EXPECT_EQ(identity->accel, Accel::kKvm);
  EXPECT_EQ(identity->vfio_functions, std::vector<pci::Address>{pci::Address(0, 0x18, 0, 0)});
  EXPECT_FALSE(read_qemu_identity(split_cmdline("/usr/sbin/sshd\0-D\0"s)));
  EXPECT_FALSE(read_qemu_identity(split_cmdline("qemu\0-name\0debug-threads=on\0"s)));
  EXPECT_FALSE(read_qemu_identity({}));
  EXPECT_EQ(read_qemu_identity(split_cmdline("qemu\0-name\0guest=x\0"s))->runtime_dir, "");
}

// The reader and the builder share the format: what build_argv() writes comes back.
TEST(QemuCmdline, ReadsTheNameArgumentTheBuilderWrites) {
  auto identity = read_qemu_identity({"qemu", "-name", name_argument("3f1c0a4e-0000-4000-8000-000000000001")});
  ASSERT_TRUE(identity);
  EXPECT_EQ(identity->vm_id, "3f1c0a4e-0000-4000-8000-000000000001");
  EXPECT_EQ(identity->accel, Accel::kTcg);
}

// A command line is outside data: a host= that is not a PCI address never reaches a sysfs path.
TEST(QemuCmdline, LeavesOutVfioHostsThatAreNotAddresses) {
  auto identity = read_qemu_identity(
      {"qemu", "-name", "guest=vm-1", "-device", "vfio-pci,host=../../../etc,id=x", "-device",
       "vfio-pci,id=no-host", "-device", "vfio-pci,host=2B:00.1,id=short-form"});
  ASSERT_TRUE(identity);
  EXPECT_EQ(identity->vfio_functions, std::vector<pci::Address>{pci::Address(0, 0x2b, 0, 1)});
}

TEST(QemuCmdline, ComparesVmIdsWithoutCase) {
  EXPECT_TRUE(same_vm_id("3F1C0A4E-AB", "3f1c0a4e-ab"));
  EXPECT_FALSE(same_vm_id("vm-1", "vm-10"));
}

}  // namespace
}  // namespace feos::vmm::qemu
