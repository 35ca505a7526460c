#!/usr/bin/env python3
"""Proves a VM plan's address space with the guest's real firmware, without GPUs.

Takes a dry-run plan (`feosctl vm create --dry-run -o json`, or tests/firmware's
feos-firmware-plan: `qemu_argv` plus the `gpus` with every function's BARs), replaces each
passed-through function by stand-ins that carry the same BARs on the same root port, boots the
result under TCG with a tiny Linux guest, and reads inside the guest, from
/sys/bus/pci/devices/*/resource, whether the firmware placed every BAR at its full size.

How a card's BARs are represented (QEMU 7.2 has no device with a free-sized non-prefetchable
BAR; see tests/firmware/README.md):
  - each 64-bit prefetchable BAR: a `pci-testdev,membar=SIZE` (BAR2: 64-bit prefetchable, SIZE)
    in slot 0 of the card's root port, functions 0.. in the order of the card's functions and
    BARs; these are the BARs asserted;
  - the non-prefetchable memory BARs (32- or 64-bit; the firmware puts both below 4 GiB) of a
    root port: `mem-reserve=` on that pcie-root-port, the window they need (packed largest first,
    rounded to its largest BAR, at least 1 MiB); asserted as the port's memory window;
  - I/O BARs: `io-reserve=4096` on the port; asserted as the port's I/O window;
  - 32-bit prefetchable BARs: not representable (a stand-in's prefetchable BAR is 64-bit, which
    would move the port's whole prefetchable window above 4 GiB): refused (exit 2).
Each pci-testdev also has a 4 KiB memory BAR0 and a 256-byte I/O BAR1 of its own; they are
reported, not asserted.

Removed or replaced because they cannot run here: the vfio-pci devices (by stand-ins), `-S` (no
QMP `cont` comes), disks and NICs (-blockdev/-netdev and their devices), the ignition fw_cfg,
-kernel/-initrd/-append (the test guest's), the host-nodes binding of NUMA memory backends (this
machine may lack the planned host's nodes), -pidfile and the QMP socket (moved into a temporary
directory), the serial console's socket (a file the harness reads); `-accel kvm` becomes tcg and
`-cpu host,host-phys-bits=on` becomes `-cpu max,phys-bits=<plan's phys_bits>`. Everything else
(machine, -global, -fw_cfg, -sandbox, root ports, pflash drives) stays; a writable pflash (the
VM's variable store) is replaced by a temporary copy of it.

Exit: 0 when the outcome is the expected one (--expect, default pass: every BAR assigned),
1 when it is not, 2 for a bad plan or usage, 77 (skip) when qemu or the firmware is missing.
"""
import argparse
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
BUSYBOX = "/bin/busybox"
NOARG_FLAGS = {"-S", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-no-shutdown",
               "-enable-kvm", "-snapshot", "-daemonize", "-no-hpet"}
STAND_IN_BAR = 2            # pci-testdev's membar
PORT_IO_WINDOW = 13         # a bridge's lines in sysfs `resource`: 13 I/O, 14 memory, 15 prefetchable
PORT_MEM_WINDOW = 14
REDHAT = "0x1b36"
PCI_TESTDEV, PCIE_ROOT_PORT = "0x0005", "0x000c"

GUEST_INIT = r"""#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
echo FEOS-BARS-BEGIN
for d in /sys/bus/pci/devices/*; do
  n=${d##*/}
  cd -P "$d/.." && p=${PWD##*/}
  read -r v < "$d/vendor"; read -r i < "$d/device"
  echo "D $n $v $i $p"
  i=0
  while read -r s e f; do echo "R $n $i $s $e $f"; i=$((i + 1)); done < "$d/resource"
done
$B dmesg | $B grep -E 'BAR [0-9]+|bridge window' | while read -r l; do echo "K $l"; done
read -r u _ < /proc/uptime; echo "U $u"
echo FEOS-BARS-END
$B poweroff -f
"""


class PlanError(Exception):
    pass


class Skip(Exception):
    pass


# ---- qemu option strings ("driver,key=value,..." with ",," for a comma) ----

def split_opts(text):
    parts, cur, i = [], "", 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1:i + 2] == ",":
                cur += ","
                i += 2
                continue
            parts.append(cur)
            cur = ""
        else:
            cur += text[i]
        i += 1
    parts.append(cur)
    return parts


class Opts:
    """One option value: an optional leading key-less item (the driver) and key=value pairs."""

    def __init__(self, text):
        self.head, self.pairs = None, []
        for i, part in enumerate(split_opts(text)):
            if "=" not in part and i == 0:
                self.head = part
            else:
                key, _, value = part.partition("=")
                self.pairs.append([key, value])

    def get(self, key):
        for k, v in self.pairs:
            if k == key:
                return v
        return None

    def set(self, key, value):
        for pair in self.pairs:
            if pair[0] == key:
                pair[1] = value
                return self
        self.pairs.append([key, value])
        return self

    def remove(self, key):
        before = len(self.pairs)
        self.pairs = [p for p in self.pairs if p[0] != key]
        return len(self.pairs) != before

    def render(self):
        items = ([self.head] if self.head is not None else []) + [k + "=" + v for k, v in self.pairs]
        return ",".join(item.replace(",", ",,") for item in items)


def parse_argv(argv):
    items, i = [], 1
    while i < len(argv):
        flag = argv[i]
        if flag in NOARG_FLAGS or i + 1 >= len(argv):
            items.append([flag, None])
            i += 1
        else:
            items.append([flag, argv[i + 1]])
            i += 2
    return items


def render_argv(binary, items):
    out = [binary]
    for flag, value in items:
        out.append(flag)
        if value is not None:
            out.append(value)
    return out


# ---- the plan ----

def load_plan(path):
    with open(path) as f:
        doc = json.load(f)
    plan = doc.get("plan", doc)
    if not plan.get("qemu_argv") or not isinstance(plan.get("gpus"), list):
        raise PlanError(path + ": no plan.qemu_argv and plan.gpus (a dry-run plan in JSON)")
    functions = {}
    for gpu in plan["gpus"]:
        for fn in list(gpu.get("functions", [])) + list(gpu.get("group_peers", [])) + list(gpu.get("fabric", [])):
            functions[fn["address"]] = fn
    return plan, functions


def np_window(sizes):
    """The memory window non-prefetchable BARs of `sizes` need behind one bridge (mmio_layout.h)."""
    if not sizes:
        return 0
    sizes = sorted(sizes, reverse=True)
    total = 0
    for size in sizes:
        total = (total + size - 1) // size * size + size
    unit = max(sizes[0], MiB)
    return (total + unit - 1) // unit * unit


def fmt_size(n):
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit and n % unit == 0:
            return "%d %s" % (n // unit, name)
    return "%d bytes" % n


class StandIn:
    def __init__(self, port, function, host, bar, size, device_id):
        self.port, self.function, self.host, self.bar, self.size = port, function, host, bar, size
        self.device_id = device_id


class PortCheck:
    """A root port window that represents BARs no stand-in carries."""

    def __init__(self, port, line, kind, size, what):
        self.port, self.line, self.kind, self.size, self.what = port, line, kind, size, what


def transform(plan, functions, args, workdir):
    """The runnable argv, the stand-ins and the port windows to check."""
    items = parse_argv(plan["qemu_argv"])
    binary = plan["qemu_argv"][0]

    # Pass 1: which host functions each root port holds (by the vfio-pci devices' bus=).
    by_port = {}
    for flag, value in items:
        if flag == "-device" and value and Opts(value).head == "vfio-pci":
            o = Opts(value)
            host, bus = o.get("host"), o.get("bus")
            if host not in functions:
                raise PlanError("vfio-pci host=%s is not among the plan's gpus" % host)
            by_port.setdefault(bus, []).append(host)

    stand_ins, port_checks, reserves = [], [], {}
    for port, hosts in by_port.items():
        np_sizes, io = [], False
        for host in hosts:
            for bar in functions[host].get("bars", []):
                size = int(bar["size"])
                if bar.get("is_io"):
                    io = True
                elif bar.get("prefetchable") and bar.get("is_64bit"):
                    k = sum(1 for s in stand_ins if s.port == port)
                    if k == 8:
                        raise PlanError("root port %s: more than 8 64-bit prefetchable BARs" % port)
                    stand_ins.append(StandIn(port, k, host, bar["index"], size, "%s-s%d" % (port, k)))
                elif bar.get("prefetchable"):
                    raise PlanError("%s BAR%d: a 32-bit prefetchable BAR cannot be represented "
                                    "(see tests/firmware/README.md)" % (host, bar["index"]))
                else:
                    np_sizes.append(size)
        reserve = {}
        if np_sizes:
            reserve["mem-reserve"] = np_window(np_sizes)
            port_checks.append(PortCheck(port, PORT_MEM_WINDOW, "mem", reserve["mem-reserve"],
                                         "%d non-prefetchable BAR(s)" % len(np_sizes)))
        if io:
            reserve["io-reserve"] = 4096
            port_checks.append(PortCheck(port, PORT_IO_WINDOW, "io", 4096, "I/O BAR(s)"))
        reserves[port] = reserve

    strip = set(args.strip or [])
    stripped = set()
    drop_drives, drop_netdevs = set(), set()
    out = []
    emitted = set()
    has_pflash = False
    for flag, value in items:
        o = Opts(value) if value is not None else None
        if flag == "-S" or flag in ("-kernel", "-initrd", "-append"):
            continue
        if flag == "-accel" and value == "kvm":
            out.append([flag, "tcg"])
            continue
        if flag == "-cpu":
            if o.head == "host":
                o = Opts("max").set("phys-bits", str(plan["address_space"]["phys_bits"]))
            if "phys-bits" in strip and o.remove("phys-bits"):
                stripped.add("phys-bits")
            out.append([flag, o.render()])
            continue
        if flag == "-object" and (o.head or "").startswith("memory-backend-"):
            # The guest's NUMA memory is bound to the planned host's nodes, which this machine
            # may not have; the binding plays no part in the address space.
            o.remove("host-nodes")
            o.remove("policy")
            out.append([flag, o.render()])
            continue
        if flag == "-global" and o.get("q35-pcihost.pci-hole64-size") is not None and "hole64" in strip:
            stripped.add("hole64")
            continue
        if flag == "-fw_cfg" and o.get("name") == "opt/ovmf/X-PciMmio64Mb" and "ovmf-aperture" in strip:
            stripped.add("ovmf-aperture")
            continue
        if flag == "-fw_cfg" and o.get("name") == "opt/com.coreos/config":
            continue
        if flag == "-pidfile":
            out.append([flag, os.path.join(workdir, "qemu.pid")])
            continue
        if flag == "-chardev" and o.head == "socket" and o.get("path"):
            if o.get("id") == "con0":
                o = Opts("file").set("id", "con0").set("path", os.path.join(workdir, "console.log"))
            else:
                o.set("path", os.path.join(workdir, o.get("id") + ".sock"))
            out.append([flag, o.render()])
            continue
        if flag == "-blockdev":
            # feosd's UEFI firmware (pflash0/pflash1 of -machine): the code as it is, the VM's
            # variable store as a fresh copy of the firmware's template (the plan names both).
            node = o.get("node-name") or ""
            if node.startswith("feos-fw-"):
                has_pflash = True
                if node == "feos-fw-code-file" and not os.path.exists(o.get("filename") or ""):
                    raise Skip("firmware %s is missing" % o.get("filename"))
                if node == "feos-fw-vars-file":
                    src = (plan.get("firmware") or {}).get("vars_template") or OVMF_VARS
                    if not os.path.exists(src):
                        raise Skip("no variable store to copy (%s)" % src)
                    copy = os.path.join(workdir, "vars.fd")
                    shutil.copyfile(src, copy)
                    o.set("filename", copy)
                out.append([flag, o.render()])
            continue
        if flag == "-netdev":
            drop_netdevs.add(o.get("id"))
            continue
        if flag == "-drive" and o.get("if") == "pflash":
            has_pflash = True
            if not os.path.exists(o.get("file") or ""):
                if o.get("readonly") == "on":
                    raise Skip("firmware %s is missing" % o.get("file"))
            if o.get("readonly") != "on":
                copy = os.path.join(workdir, "vars.fd")
                src = o.get("file") if os.path.exists(o.get("file") or "") else OVMF_VARS
                if not os.path.exists(src):
                    raise Skip("no variable store to copy (%s)" % src)
                shutil.copyfile(src, copy)
                o.set("file", copy)
            out.append([flag, o.render()])
            continue
        if flag == "-device":
            if o.get("drive") is not None or o.get("netdev") is not None:
                continue
            if o.head == "pcie-root-port" and o.get("id") in reserves:
                if "io-reserve" in strip and o.remove("io-reserve"):
                    stripped.add("io-reserve")
                for key, size in reserves[o.get("id")].items():
                    o.set(key, str(size))
                out.append([flag, o.render()])
                continue
            if o.head == "vfio-pci":
                port = o.get("bus")
                if port not in emitted:
                    emitted.add(port)
                    mine = [s for s in stand_ins if s.port == port]
                    for s in mine:
                        d = Opts("pci-testdev").set("id", s.device_id).set("bus", port)
                        d.set("addr", "0x0.%d" % s.function)
                        if s.function == 0 and len(mine) > 1:
                            d.set("multifunction", "on")
                        d.set("membar", str(s.size))
                        out.append(["-device", d.render()])
                continue
        out.append([flag, value])

    missing = strip - stripped
    if missing:
        raise PlanError("--strip %s: the argv has no such setting" % ",".join(sorted(missing)))
    if args.firmware == "ovmf":
        if has_pflash:
            raise PlanError("--firmware ovmf: the argv has pflash drives already")
        for path in (OVMF_CODE, OVMF_VARS):
            if not os.path.exists(path):
                raise Skip("OVMF is missing (%s; Debian package ovmf)" % path)
        vars_copy = os.path.join(workdir, "vars.fd")
        shutil.copyfile(OVMF_VARS, vars_copy)
        out.append(["-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + OVMF_CODE])
        out.append(["-drive", "if=pflash,format=raw,unit=1,file=" + vars_copy])
        has_pflash = True
    out.append(["-no-reboot", None])
    firmware = "OVMF" if has_pflash else "SeaBIOS"
    # OVMF's kernel loader needs the bzImage (EFI stub); SeaBIOS boots the ELF through PVH.
    kernel = (pvh_kernel(args.kernel) if firmware == "SeaBIOS" and args.pvh else None) or args.kernel
    out.append(["-kernel", kernel])
    out.append(["-initrd", os.path.join(workdir, "initramfs.cpio")])
    out.append(["-append", "console=ttyS0 quiet panic=-1"])
    return render_argv(binary, out), stand_ins, port_checks, firmware, sorted(stripped)


# ---- the guest ----

def pvh_kernel(bzimage):
    """The uncompressed vmlinux inside `bzimage` (an xz payload), cached beside it as
    <bzimage>.vmlinux; None when there is no xz payload. Under SeaBIOS qemu boots such an ELF
    through its PVH entry (Debian's kernel has CONFIG_PVH): the same firmware POST and PCI
    placement, without decompressing the kernel under TCG (about 15 s less per boot here)."""
    cached = bzimage + ".vmlinux"
    if os.path.exists(cached) and os.path.getmtime(cached) >= os.path.getmtime(bzimage):
        return cached
    with open(bzimage, "rb") as f:
        data = f.read()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        return None
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    except lzma.LZMAError:
        return None
    if not elf.startswith(b"\x7fELF"):
        return None
    tmp = "%s.%d.tmp" % (cached, os.getpid())
    with open(tmp, "wb") as f:
        f.write(elf)
    os.replace(tmp, cached)  # parallel cases may race: each writes the same bytes
    return cached


def cpio_entry(name, mode, data=b"", rdev=(0, 0)):
    header = "070701" + "".join("%08X" % v for v in (
        0, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0))
    out = header.encode() + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)


def write_initramfs(path):
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    entries = [cpio_entry(d, stat.S_IFDIR | 0o755) for d in ("bin", "dev", "proc", "sys")]
    entries.append(cpio_entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(cpio_entry("bin/busybox", stat.S_IFREG | 0o755, busybox))
    entries.append(cpio_entry("init", stat.S_IFREG | 0o755, GUEST_INIT.encode()))
    entries.append(cpio_entry("TRAILER!!!", 0))
    with open(path, "wb") as f:
        f.write(b"".join(entries))


def boot(argv, workdir, timeout):
    """Runs qemu until the guest's report ends. Returns (report lines or None, qemu output, rc)."""
    console = os.path.join(workdir, "console.log")
    log = open(os.path.join(workdir, "qemu.log"), "w+")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    report = None
    while True:
        text = open(console, errors="replace").read() if os.path.exists(console) else ""
        if "FEOS-BARS-END" in text:
            body = text.split("FEOS-BARS-BEGIN", 1)[-1].split("FEOS-BARS-END", 1)[0]
            report = [line.strip() for line in body.splitlines() if line.strip()]
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    try:
        proc.wait(timeout=10 if report is not None else 0.1)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.seek(0)
    return report, log.read(), proc.returncode


def parse_report(lines):
    devices, resources, kernel = {}, {}, []
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "D":
            bdf, vendor, device, parent = rest.split()[:4]
            devices[bdf] = {"vendor": vendor, "device": device, "parent": parent}
        elif kind == "R":
            f = rest.split()
            resources[(f[0], int(f[1]))] = (int(f[2], 16), int(f[3], 16))
        elif kind == "K":
            kernel.append(rest)
    return devices, resources, kernel


def resource(resources, bdf, line):
    start, end = resources.get((bdf, line), (0, 0))
    size = end - start + 1 if end > start else 0
    return start, size


def kernel_note(kernel, bdf, bar):
    """What the guest kernel said about a BAR: 'kernel' when it assigned the BAR itself (the
    firmware did not), else its first complaint ("can't claim; no compatible bridge window",
    "can't assign; no space"), else ''."""
    assigned, complaint = False, ""
    for line in kernel:
        if bdf + ": BAR %d " % bar not in line and bdf + ": BAR %d:" % bar not in line:
            continue
        reason = line.split(": ", 2)[-1]
        if reason.startswith(("BAR", "[")) or not reason:
            continue
        if reason.startswith("assigned") or reason.endswith(": assigned"):
            assigned = True
        elif not complaint:
            complaint = reason[:60]
    return "kernel" if assigned and not complaint else complaint


def evaluate(argv, stand_ins, port_checks, report):
    devices, resources, kernel = parse_report(report)
    # The guest lists its ports by address: by the bus they sit on (pcie.0 is bus 0, an expander
    # bus its bus_nr), then in the order qemu gave them slots there (the argv's).
    bus_nr, arg_ports = {"pcie.0": 0}, []
    for i in range(1, len(argv) - 1):
        if argv[i] != "-device":
            continue
        o = Opts(argv[i + 1])
        if o.head == "pxb-pcie":
            bus_nr[o.get("id")] = int(o.get("bus_nr"))
        elif o.head == "pcie-root-port":
            arg_ports.append((bus_nr.get(o.get("bus"), 0), i, o.get("id")))
    arg_ports = [port for _, _, port in sorted(arg_ports)]
    guest_ports = sorted(b for b, d in devices.items()
                         if d["vendor"] == REDHAT and d["device"] == PCIE_ROOT_PORT
                         and d["parent"].startswith("pci"))
    rows, problems = [], []
    if len(guest_ports) != len(arg_ports):
        problems.append("the guest has %d pcie-root-ports, the argv %d" % (len(guest_ports), len(arg_ports)))
        return rows, problems, (0, 0)
    port_bdf = dict(zip(arg_ports, guest_ports))
    children = {}
    for bdf, d in devices.items():
        children.setdefault(d["parent"], []).append(bdf)
    extra_total = extra_ok = 0
    for s in stand_ins:
        slot = [b for b in sorted(children.get(port_bdf[s.port], [])) if b.endswith(".%d" % s.function)]
        bdf = slot[0] if slot else None
        if bdf is None or devices[bdf]["device"] != PCI_TESTDEV:
            rows.append(("stand-in", s.host, "BAR%d" % s.bar, s.size, "-", 0, False, "not found in the guest"))
            problems.append("%s BAR%d: stand-in %s not found in the guest" % (s.host, s.bar, s.device_id))
            continue
        start, size = resource(resources, bdf, STAND_IN_BAR)
        ok = start != 0 and size == s.size
        note = kernel_note(kernel, bdf, STAND_IN_BAR) or ("firmware" if ok else "")
        if start != 0 and size != s.size:
            note = "size %s" % fmt_size(size)
        rows.append(("stand-in", s.host, "BAR%d" % s.bar, s.size, bdf, start, ok, note))
        if not ok:
            problems.append("%s BAR%d (%s): %s" % (s.host, s.bar, fmt_size(s.size), note or "unassigned"))
        for own in (0, 1):
            extra_total += 1
            extra_ok += resource(resources, bdf, own)[0] != 0
    for c in port_checks:
        bdf = port_bdf[c.port]
        start, size = resource(resources, bdf, c.line)
        ok = start != 0 and size >= c.size
        rows.append(("window", c.port, c.kind, c.size, bdf, start, ok,
                     c.what + ("" if ok else "; window %s" % fmt_size(size))))
        if not ok:
            problems.append("root port %s: %s window for %s: %s" % (
                c.port, c.kind, c.what, "unassigned" if start == 0 else "only " + fmt_size(size)))
    return rows, problems, (extra_ok, extra_total)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("plan", help="dry-run plan JSON (feosctl vm create --dry-run -o json)")
    p.add_argument("--kernel", required=True, help="guest kernel (tests/guest/build-guest.sh's vmlinuz)")
    p.add_argument("--firmware", choices=["argv", "ovmf"], default="argv",
                   help="argv: what the argv says (SeaBIOS without pflash); ovmf: add Debian's OVMF")
    p.add_argument("--strip", action="append", choices=["phys-bits", "hole64", "ovmf-aperture", "io-reserve"],
                   help="remove this setting from the argv (repeatable)")
    p.add_argument("--expect", choices=["pass", "unassigned", "refused"], default="pass",
                   help="the outcome that exits 0 (default pass)")
    p.add_argument("--timeout", type=float, default=180, help="seconds the boot may take")
    p.add_argument("--no-pvh", dest="pvh", action="store_false",
                   help="boot the bzImage under SeaBIOS too (default: its vmlinux through PVH)")
    p.add_argument("--name", default="", help="a label for the output")
    p.add_argument("--save-console", metavar="FILE", help="copy the guest's console output here")
    args = p.parse_args()
    label = ("[%s] " % args.name) if args.name else ""

    try:
        plan, functions = load_plan(args.plan)
        qemu = plan["qemu_argv"][0]
        if shutil.which(qemu) is None:
            raise Skip("%s not found" % qemu)
        if not os.path.exists(args.kernel):
            raise PlanError("--kernel %s does not exist (ctest -R build_test_guest)" % args.kernel)
        if not os.path.exists(BUSYBOX):
            raise Skip("%s is missing (busybox-static)" % BUSYBOX)
        with tempfile.TemporaryDirectory(prefix="feos-fw-") as workdir:
            argv, stand_ins, port_checks, firmware, stripped = transform(plan, functions, args, workdir)
            write_initramfs(os.path.join(workdir, "initramfs.cpio"))
            what = "%s%s%s" % (firmware, ", without " if stripped else "", ", ".join(stripped))
            print("%sboot: %s; %d stand-ins, %d port windows" % (label, what, len(stand_ins), len(port_checks)))
            print("argv: " + " ".join(argv))
            began = time.monotonic()
            report, qemu_out, rc = boot(argv, workdir, args.timeout)
            wall = time.monotonic() - began
            console = os.path.join(workdir, "console.log")
            if args.save_console and os.path.exists(console):
                shutil.copyfile(console, args.save_console)
    except Skip as e:
        print("SKIP: %s" % e)
        return 77
    except (PlanError, OSError, ValueError, KeyError) as e:
        print("bar_proof: %s" % e, file=sys.stderr)
        return 2

    if report is None:
        lines = [l for l in qemu_out.strip().splitlines() if l.strip()]
        if rc is not None and rc != 0 and not lines == []:
            outcome = "refused"
            verdict = "FAIL (qemu refused to start, exit %d): %s" % (rc, lines[-1])
        else:
            outcome = "no-report"
            verdict = "FAIL (the guest did not report within %.0f s; qemu exit %s)" % (args.timeout, rc)
        for line in lines[-5:]:
            print("qemu: " + line)
    else:
        rows, problems, (extra_ok, extra_total) = evaluate(argv, stand_ins, port_checks, report)
        print("%-8s %-14s %-5s %9s  %-12s %-18s %-8s %s" % (
            "what", "represents", "BAR", "size", "guest", "start", "assigned", "note"))
        for kind, owner, bar, size, bdf, start, ok, note in rows:
            print("%-8s %-14s %-5s %9s  %-12s 0x%-16x %-8s %s" % (
                kind, owner, bar, fmt_size(size), bdf, start, "yes" if ok else "no", note))
        print("pci-testdev's own BAR0/BAR1 (not the card's): %d of %d assigned" % (extra_ok, extra_total))
        assigned = sum(1 for r in rows if r[6])
        if problems:
            outcome = "unassigned"
            verdict = "FAIL (BARs unassigned: %d of %d placed): %s" % (assigned, len(rows), "; ".join(problems))
        else:
            outcome = "pass"
            verdict = "PASS: all %d BARs and windows placed at full size" % len(rows)
    print("%sVERDICT %s: %s [%.1f s boot]" % (label, firmware, verdict, wall))
    if outcome == args.expect:
        if args.expect != "pass":
            print("%sas expected (--expect %s)" % (label, args.expect))
        return 0
    print("%sexpected %s, got %s" % (label, args.expect, outcome))
    return 1


if __name__ == "__main__":
    sys.exit(main())
