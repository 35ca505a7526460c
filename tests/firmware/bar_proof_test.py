#!/usr/bin/env python3
"""Unit tests of bar_proof.py's argv rewriting and guest-report evaluation (no qemu), and of the
plan format `feosctl vm create --dry-run -o json` writes."""
import json
import lzma
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bar_proof  # noqa: E402

GiB, MiB, KiB = 1 << 30, 1 << 20, 1 << 10


def bar(index, size, is_64bit, prefetchable, is_io=False):
    return {"index": index, "size": str(size), "is_64bit": is_64bit, "prefetchable": prefetchable,
            "is_io": is_io}


def function(address, bars):
    return {"address": address, "id": "10de:2330", "class_code": 0x030200, "iommu_group": "1",
            "original_driver": "nvidia", "bars": bars}


H100 = function("0000:18:00.0", [bar(0, 16 * MiB, False, False), bar(1, 128 * GiB, True, True),
                                 bar(3, 32 * MiB, True, True)])
AUDIO = function("0000:18:00.1", [bar(0, 16 * KiB, False, False), bar(2, 128, False, False, True)])
PEER = function("0000:05:00.0", [bar(0, 32 * MiB, True, False)])

ARGV = ["qemu-system-x86_64", "-name", "guest=x,debug-threads=on", "-machine", "q35", "-accel", "tcg",
        "-cpu", "max,phys-bits=40", "-m", "512M", "-global", "q35-pcihost.pci-hole64-size=549755813888",
        "-nodefaults", "-no-user-config", "-S", "-pidfile", "/run/x/qemu.pid",
        "-chardev", "socket,id=qmp0,path=/run/x/qmp.sock,server=on,wait=off",
        "-mon", "chardev=qmp0,mode=control",
        "-chardev", "socket,id=con0,path=/run/x/console.sock,server=on,wait=off",
        "-serial", "chardev:con0", "-kernel", "/img/vmlinuz", "-append", "console=ttyS0",
        "-blockdev", "driver=file,node-name=drive0-file,filename=/img/d.raw",
        "-device", "virtio-blk-pci,drive=drive0,id=data",
        "-device", "pcie-root-port,id=feos-gpu0-rp,bus=pcie.0,chassis=1,slot=1",
        "-device", "vfio-pci,host=0000:18:00.0,id=feos-gpu0-f0,bus=feos-gpu0-rp,addr=0x0.0,multifunction=on",
        "-device", "vfio-pci,host=0000:18:00.1,id=feos-gpu0-f1,bus=feos-gpu0-rp,addr=0x0.1",
        "-device", "pcie-root-port,id=feos-gpu0-peer0-rp,bus=pcie.0,chassis=1,slot=2",
        "-device", "vfio-pci,host=0000:05:00.0,id=feos-gpu0-peer0,bus=feos-gpu0-peer0-rp,addr=0x0.0"]


class Args:
    def __init__(self, strip=None, firmware="argv"):
        self.strip, self.firmware, self.kernel, self.pvh = strip, firmware, "/guest/vmlinuz", False


def plan(argv=None, functions=(H100, AUDIO, PEER)):
    return {"gpus": [{"functions": list(functions[:2]), "group_peers": list(functions[2:])}],
            "address_space": {"phys_bits": 40}, "qemu_argv": argv or ARGV}


def transform(p, args):
    functions = {f["address"]: f for g in p["gpus"] for f in g["functions"] + g["group_peers"]}
    with tempfile.TemporaryDirectory() as work:
        argv, stand_ins, checks, firmware, stripped = bar_proof.transform(p, functions, args, work)
        return [a.replace(work, "WORK") for a in argv], stand_ins, checks, firmware, stripped


def devices(argv):
    return [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == "-device"]


class TransformTest(unittest.TestCase):
    def test_stand_ins_and_port_windows(self):
        argv, stand_ins, checks, firmware, _ = transform(plan(), Args())
        self.assertEqual(firmware, "SeaBIOS")
        self.assertEqual(devices(argv), [
            # 16 MiB + 16 KiB of non-prefetchable BARs: a window rounded to its largest BAR
            "pcie-root-port,id=feos-gpu0-rp,bus=pcie.0,chassis=1,slot=1,mem-reserve=%d,io-reserve=4096"
            % (32 * MiB),
            "pci-testdev,id=feos-gpu0-rp-s0,bus=feos-gpu0-rp,addr=0x0.0,multifunction=on,membar=%d" % (128 * GiB),
            "pci-testdev,id=feos-gpu0-rp-s1,bus=feos-gpu0-rp,addr=0x0.1,membar=%d" % (32 * MiB),
            "pcie-root-port,id=feos-gpu0-peer0-rp,bus=pcie.0,chassis=1,slot=2,mem-reserve=%d" % (32 * MiB)])
        self.assertEqual([(s.host, s.bar, s.size) for s in stand_ins],
                         [("0000:18:00.0", 1, 128 * GiB), ("0000:18:00.0", 3, 32 * MiB)])
        self.assertEqual([(c.port, c.kind, c.size) for c in checks],
                         [("feos-gpu0-rp", "mem", 32 * MiB), ("feos-gpu0-rp", "io", 4096),
                          ("feos-gpu0-peer0-rp", "mem", 32 * MiB)])

    def test_removes_what_cannot_run_here(self):
        argv, *_ = transform(plan(), Args())
        for gone in ("-S", "-blockdev", "/img/vmlinuz", "/run/x/qmp.sock", "console=ttyS0"):
            self.assertNotIn(gone, argv)
        self.assertIn("file,id=con0,path=WORK/console.log", argv)
        self.assertIn("socket,id=qmp0,path=WORK/qmp0.sock,server=on,wait=off", argv)
        self.assertEqual(argv[argv.index("-kernel") + 1], "/guest/vmlinuz")
        self.assertIn("q35-pcihost.pci-hole64-size=549755813888", argv)
        self.assertFalse(any(d.startswith(("vfio-pci", "virtio-blk")) for d in devices(argv)))

    def test_strip(self):
        argv, *_, stripped = transform(plan(), Args(strip=["hole64", "phys-bits"]))
        self.assertEqual(stripped, ["hole64", "phys-bits"])
        self.assertFalse(any("pci-hole64-size" in a for a in argv))
        self.assertEqual(argv[argv.index("-cpu") + 1], "max")
        with self.assertRaisesRegex(bar_proof.PlanError, "ovmf-aperture: the argv has no such setting"):
            transform(plan(), Args(strip=["ovmf-aperture"]))

    def test_ovmf(self):
        if not os.path.exists(bar_proof.OVMF_CODE):
            self.skipTest("no OVMF")
        argv, *_, firmware, _ = transform(plan(), Args(firmware="ovmf"))
        self.assertEqual(firmware, "OVMF")
        self.assertIn("if=pflash,format=raw,unit=0,readonly=on,file=" + bar_proof.OVMF_CODE, argv)
        self.assertIn("if=pflash,format=raw,unit=1,file=WORK/vars.fd", argv)

    def test_kvm_argv_runs_under_tcg(self):
        argv = [a.replace("max,phys-bits=40", "host,host-phys-bits=on") for a in ARGV]
        argv[argv.index("-accel") + 1] = "kvm"
        out, *_ = transform(plan(argv), Args())
        self.assertEqual(out[out.index("-accel") + 1], "tcg")
        self.assertEqual(out[out.index("-cpu") + 1], "max,phys-bits=40")

    def test_refuses_what_it_cannot_represent(self):
        pref32 = function("0000:18:00.0", [bar(0, 256 * MiB, False, True)])
        with self.assertRaisesRegex(bar_proof.PlanError, "32-bit prefetchable"):
            transform(plan(functions=(pref32, AUDIO, PEER)), Args())
        stranger = [a.replace("host=0000:18:00.1", "host=0000:99:00.1") for a in ARGV]
        with self.assertRaisesRegex(bar_proof.PlanError, "not among the plan's gpus"):
            transform(plan(stranger), Args())

    def test_np_window_matches_mmio_layout(self):
        self.assertEqual(bar_proof.np_window([16 * MiB]), 16 * MiB)
        self.assertEqual(bar_proof.np_window([16 * KiB, 16 * KiB]), MiB)
        self.assertEqual(bar_proof.np_window([32 * MiB, 16 * MiB]), 64 * MiB)

    def test_opts_round_trip_commas(self):
        o = bar_proof.Opts("file,id=a,path=/x,,y")
        self.assertEqual(o.get("path"), "/x,y")
        self.assertEqual(o.render(), "file,id=a,path=/x,,y")


class PvhKernelTest(unittest.TestCase):
    def test_extracts_and_caches_the_elf(self):
        with tempfile.TemporaryDirectory() as work:
            bzimage = os.path.join(work, "vmlinuz")
            with open(bzimage, "wb") as f:
                f.write(b"MZ setup code" + lzma.compress(b"\x7fELF kernel", format=lzma.FORMAT_XZ))
            self.assertEqual(bar_proof.pvh_kernel(bzimage), bzimage + ".vmlinux")
            with open(bzimage + ".vmlinux", "rb") as f:
                self.assertEqual(f.read(), b"\x7fELF kernel")
            with open(bzimage, "wb") as f:
                f.write(b"MZ no xz payload")
            os.utime(bzimage, (2e9, 2e9))  # newer than the cache: extracted again
            self.assertIsNone(bar_proof.pvh_kernel(bzimage))


class EvaluateTest(unittest.TestCase):
    def report(self, bar1_start):
        return ["D 0000:00:01.0 0x1b36 0x000c pci0000:00", "D 0000:00:02.0 0x1b36 0x000c pci0000:00",
                "D 0000:01:00.0 0x1b36 0x0005 0000:00:01.0", "D 0000:01:00.1 0x1b36 0x0005 0000:00:01.0",
                "R 0000:01:00.0 0 0xfe000000 0xfe000fff 0x40200",
                "R 0000:01:00.0 2 0x%x 0x%x 0x14220c" % (bar1_start, bar1_start + 128 * GiB - 1 if bar1_start else 0),
                "R 0000:01:00.1 2 0x4000000000 0x4001ffffff 0x14220c",
                "R 0000:00:01.0 13 0xc000 0xcfff 0x100",
                "R 0000:00:01.0 14 0xfc000000 0xfdffffff 0x200",
                "R 0000:00:02.0 14 0xfa000000 0xfbffffff 0x200",
                "K [ 1.0] pci 0000:01:00.0: BAR 2 [mem size 0x2000000000 64bit pref]: can't assign; no space"]

    def test_all_placed_and_one_missing(self):
        argv, stand_ins, checks, *_ = transform(plan(), Args())
        rows, problems, extra = bar_proof.evaluate(argv, stand_ins, checks, self.report(0x2000000000))
        self.assertEqual(problems, [])
        self.assertEqual(len(rows), 5)
        self.assertEqual(extra, (1, 4))
        rows, problems, _ = bar_proof.evaluate(argv, stand_ins, checks, self.report(0))
        self.assertEqual(problems, ["0000:18:00.0 BAR1 (128 GiB): can't assign; no space"])


if __name__ == "__main__":
    unittest.main()
