#!/usr/bin/python3
"""FeOS's own VM scenarios against the real feosd, as a FeOS user runs them (issue 16).

The client knows only FeOS's API: it is generated at test time from FeOS's vm.proto, which is
ours without the feosd extensions (every field numbered 1000 or above, the feosd/v1 imports and
the BootConfig message; the test checks that nothing of feosd is left). It dials plaintext TCP on
a loopback port, as FeOS's clients do (--listen-plaintext), and boots a VM image from a real
registry (Debian's docker-registry over TLS, --registry-ca) in FeOS's image layout: a raw disk
(FAT, syslinux, the test guest's kernel and initramfs) as the ironcore rootfs layer. No kernel
boot, no extension field.

The two scenarios follow FeOS's feos/tests/integration/vm_tests.rs step by step, with one event
stream per VM read the way its wait_for_target_state reads it:
  1. create and start: StartVm refused while creating; created; running; ShutdownVm ends in
     stopped within 30 s; ResumeVm refused; StreamVmConsole on the stopped VM opens and its first
     message is the error ("Invalid VM state" / "Stopped"); start again; pause; StartVm refused;
     resume; GetVm running; PingVm; AttachNic (a tap created) shows in GetVm; DetachNic; DeleteVm.
  2. crash: running, the hypervisor killed (SIGKILL of PingVm's pid), crashed within 30 s; Start,
     Pause, Shutdown and Resume refused; DeleteVm works.
Beyond FeOS's checks: the guest booted the registry disk (its console marker), powered off by
itself at the shutdown, and listed the hot-plugged NIC; refusals are FAILED_PRECONDITION in
FeOS's words; DeleteVm leaves no qemu and no VM directory.

Usage: feos_scenario_test.py BIN_DIR PROTO_DIR   (FEOS_TEST_GUEST_DIR: the built test guest)
Needs root (the tap); skipped (77) otherwise.
"""
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc

BIN, PROTO_DIR = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
GUEST = os.environ.get("FEOS_TEST_GUEST_DIR", "")
if os.geteuid() != 0:
    print("SKIP: creating a tap needs root")
    sys.exit(77)
work = tempfile.mkdtemp(prefix="feosd-scenario.")
failures = []
children = []


def check(cond, what):
    print(("PASS: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def run(*argv, **kw):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def feos_proto(ours):
    """FeOS's vm.proto: ours less every feosd extension."""
    text = re.sub(r'^import "feosd/[^"]*";\n', "", ours, flags=re.M)
    text = re.sub(r"^// feosd extension\.\nmessage BootConfig \{.*?^\}\n", "", text, flags=re.M | re.S)
    # A field numbered 1000 or above, with the comment lines right above it.
    text = re.sub(r"^(?:[ \t]*//.*\n)*[ \t]*[^/\n]*= 1\d{3};.*\n", "", text, flags=re.M)
    return text


# --- the client, from FeOS's file alone
ours = open(os.path.join(PROTO_DIR, "feos/vm/vmm/api/v1/vm.proto")).read()
theirs = feos_proto(ours)
check("feosd" not in re.sub(r"//.*", "", theirs) and "BootConfig" not in theirs and
      not re.search(r"= 1\d{3};", theirs), "FeOS's vm.proto: ours without the feosd extensions")
gen = os.path.join(work, "gen")
os.makedirs(os.path.join(gen, "proto/feos/vm/vmm/api/v1"))
with open(os.path.join(gen, "proto/feos/vm/vmm/api/v1/vm.proto"), "w") as f:
    f.write(theirs)
run("protoc", "-I", os.path.join(gen, "proto"), "--python_out", gen, "--grpc_out", gen,
    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", os.path.join(gen, "proto/feos/vm/vmm/api/v1/vm.proto"))
sys.path.insert(0, gen)
from feos.vm.vmm.api.v1 import vm_pb2 as pb  # noqa: E402
from feos.vm.vmm.api.v1 import vm_pb2_grpc as pb_grpc  # noqa: E402


def all_messages(messages):
    for m in messages:
        yield m
        yield from all_messages(m.nested_types)


check(not any(f.number >= 1000 for m in all_messages(pb.DESCRIPTOR.message_types_by_name.values()) for f in m.fields)
      and not any(v.number >= 1000 for e in pb.DESCRIPTOR.enum_types_by_name.values() for v in e.values),
      "the generated client has no field of feosd's")


def make_boot_disk(path):
    """A raw disk SeaBIOS boots: one FAT filesystem with syslinux, the guest's kernel and initramfs."""
    kernel, initrd = os.path.join(GUEST, "vmlinuz"), os.path.join(GUEST, "initramfs.cpio")
    kib = (os.path.getsize(kernel) + os.path.getsize(initrd)) // 1024 + 4096
    run(shutil.which("mkfs.fat", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or "mkfs.fat", "-C", path, str(kib))
    cfg = os.path.join(work, "syslinux.cfg")
    with open(cfg, "w") as f:
        f.write("DEFAULT guest\nTIMEOUT 0\nLABEL guest\n  LINUX vmlinuz\n  INITRD initramfs.cpio\n"
                "  APPEND console=ttyS0\n")
    run("syslinux", "--install", path)
    run("mcopy", "-i", path, kernel, initrd, cfg, "::/")


class Registry:
    """docker-registry over TLS with a certificate made here; pushes over the distribution API."""

    def __init__(self, dir):
        self.host = f"127.0.0.1:{free_port()}"
        self.cert, key = os.path.join(dir, "registry.pem"), os.path.join(dir, "registry.key")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", self.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1")
        config = os.path.join(dir, "registry.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {dir}/storage\n"
                    f"http:\n  addr: {self.host}\n  tls:\n    certificate: {self.cert}\n    key: {key}\n")
        children.append(subprocess.Popen(["/usr/bin/docker-registry", "serve", config],
                                         stdout=open(os.path.join(dir, "registry.log"), "w"), stderr=subprocess.STDOUT))
        self.tls = ssl.create_default_context(cafile=self.cert)
        deadline = time.time() + 20
        while True:
            try:
                self.request("GET", "/v2/")
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def request(self, method, path, body=None, headers={}):
        url = path if path.startswith("https://") else f"https://{self.host}{path}"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, context=self.tls, timeout=60) as resp:
            return resp.status, resp.headers

    def push_blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _, headers = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        location = headers["Location"]
        location += ("&" if "?" in location else "?") + "digest=" + digest
        self.request("PUT", location, data, {"Content-Type": "application/octet-stream"})
        return {"digest": digest, "size": len(data)}

    def push_feos_image(self, repo, tag, disk):
        """FeOS's layout: an OCI manifest, ironcore's v1alpha1 config, the disk as the rootfs layer."""
        config = self.push_blob(repo, b"{}")
        layer = self.push_blob(repo, disk)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.ironcore.image.config.v1alpha1+json", **config},
                    "layers": [{"mediaType": "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", **layer}]}
        self.request("PUT", f"/v2/{repo}/manifests/{tag}", json.dumps(manifest).encode(),
                     {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        return f"{self.host}/{repo}:{tag}"


def failed_in_feos_words(fn, request, op, state):
    """A refusal for the VM's state: FAILED_PRECONDITION, 'Invalid VM state ... Cannot <op> VM in <state>'."""
    try:
        fn(request, timeout=30)
        return check(False, f"{op} in {state}: refused")
    except grpc.RpcError as e:
        return check(e.code() == grpc.StatusCode.FAILED_PRECONDITION and "Invalid VM state" in e.details()
                     and f"Cannot {op} VM in {state} state" in e.details(),
                     f"{op} in {state}: {e.code().name} '{e.details()}'")


class Events:
    """One StreamVmEvents stream per VM, read as FeOS's wait_for_target_state reads it: one reader
    thread queues the state changes; each wait takes them in order."""

    def __init__(self, stub, vm_id):
        self.stream = stub.StreamVmEvents(pb.StreamVmEventsRequest(vm_id=vm_id))
        self.changes = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            for event in self.stream:
                if event.data.type_url == "type.googleapis.com/feos.vm.vmm.api.v1.VmStateChangedEvent":
                    changed = pb.VmStateChangedEvent()
                    event.data.Unpack(changed)
                    self.changes.put(changed)
        except grpc.RpcError:
            pass

    def wait_for(self, target, seconds):
        """The reason of the first state change to `target` within `seconds`; None otherwise (also
        when the VM crashed first, as FeOS's wait fails then)."""
        t0 = time.time()
        reason = None
        while reason is None:
            try:
                changed = self.changes.get(timeout=max(0.0, t0 + seconds - time.time()))
            except queue.Empty:
                break
            if changed.new_state == target:  # a wait for CRASHED ends here
                reason = changed.reason
            elif changed.new_state == pb.VM_STATE_CRASHED:
                print(f"VM crashed: {changed.reason}")
                break
        check(reason is not None, f"{pb.VmState.Name(target)} within {seconds} s ({time.time() - t0:.1f} s)")
        return reason

    def close(self):
        self.stream.cancel()


class Console:
    """StreamVmConsole: the output read in a thread; lines sent as input."""

    def __init__(self, stub, vm_id):
        self.out, self.inbox, self.lock, self.closed = b"", [], threading.Condition(), False
        self.stream = stub.StreamVmConsole(self.requests(vm_id))
        threading.Thread(target=self.read, daemon=True).start()

    def requests(self, vm_id):
        yield pb.StreamVmConsoleRequest(attach=pb.AttachConsoleMessage(vm_id=vm_id))
        while not self.closed:
            with self.lock:
                self.lock.wait_for(lambda: self.inbox or self.closed, timeout=1)
                lines, self.inbox = self.inbox, []
            for line in lines:
                yield pb.StreamVmConsoleRequest(data=pb.ConsoleData(input=line.encode() + b"\n"))

    def read(self):
        try:
            for chunk in self.stream:
                with self.lock:
                    self.out += chunk.output
                    self.lock.notify_all()
        except grpc.RpcError:
            pass

    def send(self, line):
        with self.lock:
            self.inbox.append(line)
            self.lock.notify_all()

    def wait_for(self, marker, seconds):
        with self.lock:
            return self.lock.wait_for(lambda: marker.encode() in self.out, timeout=seconds)

    def close(self):
        with self.lock:
            self.closed = True
            self.lock.notify_all()
        self.stream.cancel()


def qemu_of(vm_id):
    return subprocess.run(["pgrep", "-f", f"qemu-system.*{vm_id}"], capture_output=True, text=True).stdout.split()


def config(image_ref, vcpus, mib):
    return pb.VmConfig(cpus=pb.CpuConfig(boot_vcpus=vcpus, max_vcpus=vcpus),
                       memory=pb.MemoryConfig(size_mib=mib, hugepages=False), image_ref=image_ref)


def guest_pci(console, tag):
    """The guest's PCI functions ("address vendor:device"), listed by the test guest's LSPCI."""
    console.send(f"LSPCI{tag}")
    if not console.wait_for(f"LSPCI-END{tag}", 30):
        return []
    return re.findall(rf"PCI{tag}:(\S+ \S+)", console.out.decode(errors="replace"))


def scenario_create_and_start(stub, image_ref, state_dir, tap):
    """FeOS's test_create_and_start_vm."""
    vm_id = stub.CreateVm(pb.CreateVmRequest(config=config(image_ref, 2, 256)), timeout=30).vm_id
    check(re.fullmatch(r"[0-9a-f-]{36}", vm_id) is not None, f"CreateVm answers at once with an id: {vm_id}")
    failed_in_feos_words(stub.StartVm, pb.StartVmRequest(vm_id=vm_id), "start", "Creating")
    events = Events(stub, vm_id)
    events.wait_for(pb.VM_STATE_CREATED, 180)

    stub.StartVm(pb.StartVmRequest(vm_id=vm_id), timeout=60)
    events.wait_for(pb.VM_STATE_RUNNING, 30)
    console = Console(stub, vm_id)
    check(console.wait_for("FEOS-TEST-GUEST-READY", 120), "the guest booted the registry image's disk (console marker)")
    console.close()

    stub.ShutdownVm(pb.ShutdownVmRequest(vm_id=vm_id), timeout=30)
    reason = events.wait_for(pb.VM_STATE_STOPPED, 30)
    check(reason is not None and "guest powered off" in reason, f"the guest powered off by itself: '{reason}'")
    failed_in_feos_words(stub.ResumeVm, pb.ResumeVmRequest(vm_id=vm_id), "resume", "Stopped")

    # The console of a stopped VM: the call succeeds, its stream's first message is the error.
    stream = stub.StreamVmConsole(iter([pb.StreamVmConsoleRequest(attach=pb.AttachConsoleMessage(vm_id=vm_id))]))
    try:
        next(stream)
        check(False, "StreamVmConsole in Stopped: the stream fails")
    except grpc.RpcError as e:
        check("Invalid VM state" in e.details() or "Stopped" in e.details(),
              f"StreamVmConsole in Stopped: {e.code().name} '{e.details()}'")

    stub.StartVm(pb.StartVmRequest(vm_id=vm_id), timeout=60)
    events.wait_for(pb.VM_STATE_RUNNING, 30)
    stub.PauseVm(pb.PauseVmRequest(vm_id=vm_id), timeout=30)
    events.wait_for(pb.VM_STATE_PAUSED, 30)
    failed_in_feos_words(stub.StartVm, pb.StartVmRequest(vm_id=vm_id), "start", "Paused")
    stub.ResumeVm(pb.ResumeVmRequest(vm_id=vm_id), timeout=30)
    events.wait_for(pb.VM_STATE_RUNNING, 30)
    check(stub.GetVm(pb.GetVmRequest(vm_id=vm_id), timeout=10).state == pb.VM_STATE_RUNNING, "GetVm: RUNNING")
    pid = stub.PingVm(pb.PingVmRequest(vm_id=vm_id), timeout=10).pid
    check(pid > 0 and str(pid) in qemu_of(vm_id), f"PingVm: the hypervisor's pid {pid}")

    console = Console(stub, vm_id)
    check(console.wait_for("FEOS-TEST-GUEST-READY", 120), "the guest booted again")
    before = guest_pci(console, "a")
    nic = pb.NetConfig(device_id="test", tap=pb.TapConfig(tap_name=tap))
    attached = stub.AttachNic(pb.AttachNicRequest(vm_id=vm_id, nic=nic), timeout=60)
    check(attached.device_id == "test", f"AttachNic answers the device id: {attached.device_id}")
    time.sleep(0.1)
    net = stub.GetVm(pb.GetVmRequest(vm_id=vm_id), timeout=10).config.net
    check(any(n.device_id == "test" for n in net), "GetVm shows the attached NIC")
    check(subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode == 0, f"the tap {tap} was created")
    after = guest_pci(console, "b")
    new = [f for f in after if f not in before]
    check(any(f.endswith(("0x1af4:0x1000", "0x1af4:0x1041")) for f in new), f"the guest lists the new virtio NIC: {new}")
    stub.DetachNic(pb.DetachNicRequest(vm_id=vm_id, device_id="test"), timeout=60)
    time.sleep(0.1)
    net = stub.GetVm(pb.GetVmRequest(vm_id=vm_id), timeout=10).config.net
    check(not any(n.device_id == "test" for n in net), "GetVm no longer shows the NIC")
    check(guest_pci(console, "c") == before, "the guest no longer lists it")
    check(subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode != 0,
          f"the tap {tap} feosd created went with the NIC")
    console.close()

    events.close()
    stub.DeleteVm(pb.DeleteVmRequest(vm_id=vm_id), timeout=60)
    check(not qemu_of(vm_id) and not os.path.exists(os.path.join(state_dir, "vms", vm_id)),
          "DeleteVm: no qemu and no VM directory left")


def scenario_crash(stub, image_ref, state_dir):
    """FeOS's test_vm_healthcheck_and_crash_recovery."""
    vm_id = stub.CreateVm(pb.CreateVmRequest(config=config(image_ref, 1, 256)), timeout=30).vm_id
    events = Events(stub, vm_id)
    events.wait_for(pb.VM_STATE_CREATED, 180)
    stub.StartVm(pb.StartVmRequest(vm_id=vm_id), timeout=60)
    events.wait_for(pb.VM_STATE_RUNNING, 30)
    pid = stub.PingVm(pb.PingVmRequest(vm_id=vm_id), timeout=10).pid
    if not check(pid > 0 and str(pid) in qemu_of(vm_id), f"PingVm: the hypervisor's pid {pid}"):
        return
    os.kill(pid, signal.SIGKILL)
    reason = events.wait_for(pb.VM_STATE_CRASHED, 30)
    check(reason is not None and "qemu" in reason, f"the crash's reason: '{reason}'")
    failed_in_feos_words(stub.StartVm, pb.StartVmRequest(vm_id=vm_id), "start", "Crashed")
    failed_in_feos_words(stub.PauseVm, pb.PauseVmRequest(vm_id=vm_id), "pause", "Crashed")
    failed_in_feos_words(stub.ShutdownVm, pb.ShutdownVmRequest(vm_id=vm_id), "shutdown", "Crashed")
    failed_in_feos_words(stub.ResumeVm, pb.ResumeVmRequest(vm_id=vm_id), "resume", "Crashed")
    events.close()
    stub.DeleteVm(pb.DeleteVmRequest(vm_id=vm_id), timeout=60)
    check(not os.path.exists(os.path.join(state_dir, "vms", vm_id)), "DeleteVm of the crashed VM")


tap = f"feosscn{os.getpid() % 100000}"
daemon = None
try:
    disk = os.path.join(work, "disk.raw")
    make_boot_disk(disk)
    registry = Registry(work)
    image_ref = registry.push_feos_image("feos/test-guest", "1", open(disk, "rb").read())
    state = os.path.join(work, "state")
    port = free_port()
    daemon = subprocess.Popen([os.path.join(BIN, "feosd"), "--socket", os.path.join(work, "feosd.sock"),
                               "--state-dir", state, "--accel", "tcg", "--registry-ca", registry.cert,
                               "--listen-plaintext", f"127.0.0.1:{port}"],
                              stdout=open(os.path.join(work, "feosd.log"), "w"), stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=20)
    stub = pb_grpc.VMServiceStub(channel)
    t0 = time.time()
    scenario_create_and_start(stub, image_ref, state, tap)
    print(f"scenario create and start: {time.time() - t0:.1f} s")
    t0 = time.time()
    scenario_crash(stub, image_ref, state)
    print(f"scenario crash: {time.time() - t0:.1f} s")
    check(daemon.poll() is None, "feosd still serving")
except Exception as e:  # noqa: BLE001 -- any error is a failure of the scenario, with its cause
    check(False, f"scenario stopped: {type(e).__name__}: {e}")
finally:
    # feosd leaves its VMs running when it stops: a scenario cut short leaves a qemu behind.
    for step in (lambda: daemon and daemon.terminate(), lambda: daemon and daemon.wait(timeout=30),
                 lambda: daemon and daemon.kill(),
                 lambda: subprocess.run(["pkill", "-KILL", "-f", "qemu-system.*" + work], capture_output=True),
                 *[lambda c=c: (c.terminate(), c.wait(timeout=10)) for c in children],
                 lambda: subprocess.run(["ip", "link", "delete", tap], capture_output=True)):
        try:
            step()
        except Exception as e:  # noqa: BLE001 -- clean up the rest all the same
            print(f"cleanup: {type(e).__name__}: {e}")
    if failures:
        log = os.path.join(work, "feosd.log")
        if os.path.exists(log):
            print(open(log).read()[-4000:])
    shutil.rmtree(work, ignore_errors=True)
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
