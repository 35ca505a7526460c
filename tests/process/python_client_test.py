#!/usr/bin/python3
"""Wire-contract test: a Python client generated independently from the project's .proto (by the
system protoc + grpc_python_plugin, at test time) drives a real feosd over its unix socket.

Usage: python_client_test.py BIN_DIR PROTO_DIR   (FEOS_TEST_GUEST_DIR: the built test guest)
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import grpc

BIN, PROTO_DIR = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
GUEST = os.environ.get("FEOS_TEST_GUEST_DIR", "")
work = tempfile.mkdtemp(prefix="feosd-py.")
failures = []


def check(cond, what):
    print(("PASS: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


# Generate the client.
gen = os.path.join(work, "gen")
os.makedirs(gen)
subprocess.run(["protoc", "-I", PROTO_DIR, "--python_out", gen, "--grpc_out", gen,
                "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                os.path.join(PROTO_DIR, "feos/vm/vmm/api/v1/vm.proto"),
                # Every feosd extension file: vm.proto imports most of them.
                *sorted(glob.glob(os.path.join(PROTO_DIR, "feosd/v1/*.proto")))], check=True)
sys.path.insert(0, gen)
from feos.vm.vmm.api.v1 import vm_pb2 as pb  # noqa: E402
from feos.vm.vmm.api.v1 import vm_pb2_grpc as pb_grpc  # noqa: E402

sock = os.path.join(work, "feosd.sock")
daemon = subprocess.Popen([os.path.join(BIN, "feosd"), "--socket", sock, "--state-dir",
                           os.path.join(work, "state"), "--accel", "tcg"],
                          stdout=open(os.path.join(work, "feosd.log"), "w"), stderr=subprocess.STDOUT)
try:
    channel = grpc.insecure_channel("unix:" + sock)
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = pb_grpc.VMServiceStub(channel)

    def code_of(fn, *args):
        try:
            fn(*args, timeout=10)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()

    def config():
        c = pb.VmConfig()
        c.cpus.boot_vcpus = 1
        c.memory.size_mib = 256
        c.boot.kernel = os.path.join(GUEST, "vmlinuz")
        c.boot.initramfs = os.path.join(GUEST, "initramfs.cpio")
        c.boot.cmdline = "console=ttyS0"
        return c

    vm_id = str(uuid.uuid4())
    resp = stub.CreateVm(pb.CreateVmRequest(config=config(), vm_id=vm_id), timeout=10)
    check(resp.vm_id == vm_id, "CreateVm keeps the client's vm_id")
    # FeOS's two phases: CreateVm answers with the VM creating; created once prepared.
    info = stub.GetVm(pb.GetVmRequest(vm_id=vm_id), timeout=10)
    check(info.state in (pb.VM_STATE_CREATING, pb.VM_STATE_CREATED), "GetVm after CreateVm: creating or created")
    for _ in range(500):
        if info.state != pb.VM_STATE_CREATING:
            break
        time.sleep(0.02)
        info = stub.GetVm(pb.GetVmRequest(vm_id=vm_id), timeout=10)
    check(info.state == pb.VM_STATE_CREATED, "GetVm: state CREATED")
    check(info.config.cpus.boot_vcpus == 1 and info.config.memory.size_mib == 256
          and info.config.boot.kernel.endswith("vmlinuz"), "GetVm returns the config")
    check(any(v.vm_id == vm_id for v in stub.ListVms(pb.ListVmsRequest(), timeout=10).vms), "ListVms lists it")

    events = stub.StreamVmEvents(pb.StreamVmEventsRequest(vm_id=vm_id, tail_events=10), timeout=3)
    first, second = next(events), next(events)
    changed = pb.VmStateChangedEvent()
    check(first.data.Unpack(changed) and changed.new_state == pb.VM_STATE_CREATING and first.id != "",
          "StreamVmEvents: creating event with an id, data is Any(VmStateChangedEvent)")
    check(second.data.Unpack(changed) and changed.new_state == pb.VM_STATE_CREATED and second.id != "",
          "StreamVmEvents: then the created event")
    events.cancel()

    stub.StartVm(pb.StartVmRequest(vm_id=vm_id), timeout=60)
    check(stub.GetVm(pb.GetVmRequest(vm_id=vm_id), timeout=10).state == pb.VM_STATE_RUNNING, "running after StartVm")
    ping = stub.PingVm(pb.PingVmRequest(vm_id=vm_id), timeout=10)
    check(ping.pid > 0 and ping.version != "" and ping.build_version.startswith("feosd"),
          f"PingVm: pid={ping.pid} version={ping.version} build={ping.build_version}")

    def console_requests():
        yield pb.StreamVmConsoleRequest(attach=pb.AttachConsoleMessage(vm_id=vm_id))
        time.sleep(120)  # keep the request side open while output streams

    out = b""
    deadline = time.time() + 120
    stream = stub.StreamVmConsole(console_requests(), timeout=120)
    for chunk in stream:
        out += chunk.output
        if b"FEOS-TEST-GUEST-READY" in out or time.time() > deadline:
            break
    stream.cancel()
    check(b"FEOS-TEST-GUEST-READY" in out, "StreamVmConsole delivers the guest's marker")

    # Malformed and illegal requests: the right code, a message naming the problem.
    bad_cpu = config()
    bad_cpu.cpus.boot_vcpus = 0
    no_backend = config()
    no_backend.disks.add(device_id="d0")
    # Without --image-root a request may name any file on the host, but never feosd's own.
    own_db = config()
    own_db.disks.add(device_id="d0", path=os.path.join(work, "state", "feosd.db"))
    cases = [
        ("GetVm unknown", stub.GetVm, pb.GetVmRequest(vm_id=str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND, "not found"),
        ("StartVm running", stub.StartVm, pb.StartVmRequest(vm_id=vm_id), grpc.StatusCode.FAILED_PRECONDITION, "running"),
        ("ResumeVm running", stub.ResumeVm, pb.ResumeVmRequest(vm_id=vm_id), grpc.StatusCode.FAILED_PRECONDITION, "resume"),
        ("CreateVm 0 vcpus", stub.CreateVm, pb.CreateVmRequest(config=bad_cpu), grpc.StatusCode.INVALID_ARGUMENT, "boot_vcpus"),
        ("CreateVm no disk backend", stub.CreateVm, pb.CreateVmRequest(config=no_backend), grpc.StatusCode.INVALID_ARGUMENT, "disks[0]"),
        ("CreateVm feosd.db as a disk", stub.CreateVm, pb.CreateVmRequest(config=own_db), grpc.StatusCode.INVALID_ARGUMENT, "inside feosd's state directory"),
        ("CreateVm duplicate id", stub.CreateVm, pb.CreateVmRequest(config=config(), vm_id=vm_id), grpc.StatusCode.ALREADY_EXISTS, vm_id),
        ("CreateVm traversal id", stub.CreateVm, pb.CreateVmRequest(config=config(), vm_id="../../etc"), grpc.StatusCode.INVALID_ARGUMENT, "uuid"),
        ("AttachDisk without disk", stub.AttachDisk, pb.AttachDiskRequest(vm_id=vm_id), grpc.StatusCode.INVALID_ARGUMENT, "disk: not given"),
        ("DetachNic unknown", stub.DetachNic, pb.DetachNicRequest(vm_id=vm_id, device_id="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
    ]
    for name, fn, req, want, fragment in cases:
        code, details = code_of(fn, req)
        check(code == want and fragment.lower() in details.lower(), f"{name}: {code.name} '{details}'")
    # An OCI image is pulled after CreateVm answered (FeOS's two phases): the VM is creating, then
    # crashed with the reason when the registry cannot be reached.
    oci = stub.CreateVm(pb.CreateVmRequest(config=pb.VmConfig(cpus=pb.CpuConfig(boot_vcpus=1), memory=pb.MemoryConfig(size_mib=64), image_ref="127.0.0.1:1/x/y:1")), timeout=30)
    info = stub.GetVm(pb.GetVmRequest(vm_id=oci.vm_id), timeout=10)
    for _ in range(500):
        if info.state != pb.VM_STATE_CREATING:
            break
        time.sleep(0.02)
        info = stub.GetVm(pb.GetVmRequest(vm_id=oci.vm_id), timeout=10)
    check(info.state == pb.VM_STATE_CRASHED and "https://127.0.0.1:1" in info.state_reason,
          f"CreateVm OCI image, registry unreachable: {pb.VmState.Name(info.state)} '{info.state_reason}'")
    stub.DeleteVm(pb.DeleteVmRequest(vm_id=oci.vm_id), timeout=30)
    bad_tail = stub.StreamVmEvents(pb.StreamVmEventsRequest(vm_id=vm_id, tail_id="abc"), timeout=5)
    try:
        next(bad_tail)
        check(False, "StreamVmEvents bad tail_id rejected")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"StreamVmEvents bad tail_id: {e.code().name}")

    stub.DeleteVm(pb.DeleteVmRequest(vm_id=vm_id), timeout=30)
    code, _ = code_of(stub.GetVm, pb.GetVmRequest(vm_id=vm_id))
    check(code == grpc.StatusCode.NOT_FOUND, "deleted VM is gone")
    check(daemon.poll() is None, "daemon still serving after bad requests")
finally:
    daemon.terminate()
    daemon.wait(timeout=10)
    if failures:
        print(open(os.path.join(work, "feosd.log")).read()[-3000:])
    shutil.rmtree(work, ignore_errors=True)

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
