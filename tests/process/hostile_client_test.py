#!/usr/bin/python3
"""A hostile client against the real feosd (its real QEMU adapter, --image-root set), with a client
generated independently from the .proto files at test time:

- control characters, escape sequences and over-long values in every string field of every RPC
  (found by walking the request messages' descriptors, so a new field is covered without editing
  this test): every error message must be printable ASCII and at most 1,024 bytes, and the daemon's
  log must carry no escape character;
- a VM id in upper case names the same VM; a second create with it is ALREADY_EXISTS;
- limits: VMs with the largest ignition fill the stored-size budget and the next create is
  RESOURCE_EXHAUSTED, while ListVms of that full host still fits gRPC's default 4 MiB receive
  limit; streams past --max-streams are RESOURCE_EXHAUSTED;
- a console stream that ends before its attach message is INVALID_ARGUMENT; one that never sends
  it is ended by the server.

Usage: hostile_client_test.py BIN_DIR PROTO_DIR   (FEOS_TEST_GUEST_DIR: the built test guest)
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import grpc
from google.protobuf import descriptor

BIN, PROTO_DIR = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
GUEST = os.environ.get("FEOS_TEST_GUEST_DIR", "")
work = tempfile.mkdtemp(prefix="feosd-hostile.")
failures = []
MAX_MESSAGE = 1024


def check(cond, what):
    print(("PASS: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


gen = os.path.join(work, "gen")
os.makedirs(gen)
subprocess.run(["protoc", "-I", PROTO_DIR, "--python_out", gen, "--grpc_out", gen,
                "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                os.path.join(PROTO_DIR, "feos/vm/vmm/api/v1/vm.proto"),
                # Every feosd extension file: vm.proto imports most of them.
                *sorted(glob.glob(os.path.join(PROTO_DIR, "feosd/v1/*.proto")))], check=True)
sys.path.insert(0, gen)
from feos.vm.vmm.api.v1 import vm_pb2 as pb  # noqa: E402
from feosd.v1 import host_pb2  # noqa: E402

# The files VMs may use live in the image root; the guest comes from the build.
images = os.path.join(work, "images")
os.makedirs(images)
for name in ("vmlinuz", "initramfs.cpio"):
    shutil.copy(os.path.join(GUEST, name), images)
with open(os.path.join(images, "data.raw"), "wb") as f:
    f.truncate(1 << 20)

sock = os.path.join(work, "feosd.sock")
log_path = os.path.join(work, "feosd.log")
MAX_STREAMS = 6
daemon = subprocess.Popen([os.path.join(BIN, "feosd"), "--socket", sock, "--state-dir", os.path.join(work, "state"),
                           "--accel", "tcg", "--image-root", images, "--max-streams", str(MAX_STREAMS)],
                          stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def printable(text):
    return all(0x20 <= ord(ch) < 0x7f for ch in text)


def config():
    c = pb.VmConfig()
    c.cpus.boot_vcpus = 1
    c.memory.size_mib = 128
    c.boot.kernel = os.path.join(images, "vmlinuz")
    c.boot.initramfs = os.path.join(images, "initramfs.cpio")
    c.boot.cmdline = "console=ttyS0"
    disk = c.disks.add(device_id="data", path=os.path.join(images, "data.raw"))
    disk.readonly = True
    nic = c.net.add(device_id="n0", mac_address="52:54:00:12:34:56")
    nic.tap.tap_name = "feostap0"
    return c


def string_fields(message_descriptor, prefix=(), depth=0):
    """Every path of fields ending in a string field, through nested messages (not Any)."""
    for field in message_descriptor.fields:
        path = prefix + (field,)
        if field.type == descriptor.FieldDescriptor.TYPE_STRING:
            yield path
        elif (field.type == descriptor.FieldDescriptor.TYPE_MESSAGE and depth < 4
              and field.message_type.full_name != "google.protobuf.Any"):
            yield from string_fields(field.message_type, path, depth + 1)


def with_value(request, path, value):
    out = type(request)()
    out.CopyFrom(request)
    message = out
    for field in path[:-1]:
        if field.label == descriptor.FieldDescriptor.LABEL_REPEATED:
            items = getattr(message, field.name)
            message = items[0] if len(items) else items.add()
        else:
            message = getattr(message, field.name)
    last = path[-1]
    if last.label == descriptor.FieldDescriptor.LABEL_REPEATED:
        items = getattr(message, last.name)
        if len(items):
            items[0] = value
        else:
            items.append(value)
    else:
        setattr(message, last.name, value)
    return out


try:
    channel = grpc.insecure_channel("unix:" + sock)
    grpc.channel_ready_future(channel).result(timeout=10)

    def call(service, method, request, stream=False):
        """Calls /service/method with `request`; returns (code, details)."""
        descriptor_ = service.methods_by_name[method]
        name = f"/{service.full_name}/{method}"
        serialize = type(request).SerializeToString
        try:  # responses are not decoded: only the status matters here
            if descriptor_.client_streaming:
                rpc = channel.stream_stream(name, request_serializer=serialize, response_deserializer=lambda b: b)
                for _ in rpc(iter([request]), timeout=15):
                    break
            elif descriptor_.server_streaming:
                rpc = channel.unary_stream(name, request_serializer=serialize, response_deserializer=lambda b: b)
                for _ in rpc(request, timeout=3):
                    break
            else:
                rpc = channel.unary_unary(name, request_serializer=serialize, response_deserializer=lambda b: b)
                rpc(request, timeout=15)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details() or ""

    vm_service = pb.DESCRIPTOR.services_by_name["VMService"]
    host_service = host_pb2.DESCRIPTOR.services_by_name["HostDeviceService"]
    vm_id = str(uuid.uuid4())
    code, details = call(vm_service, "CreateVm", pb.CreateVmRequest(vm_id=vm_id, config=config()))
    check(code == grpc.StatusCode.OK, f"base VM created: {code.name} {details}")

    # Requests that are valid up to the field the test spoils, so each value travels as far as it can.
    base = {
        "CreateVm": pb.CreateVmRequest(config=config()),
        "StreamVmConsole": pb.StreamVmConsoleRequest(attach=pb.AttachConsoleMessage(vm_id=vm_id)),
        "StreamVmEvents": pb.StreamVmEventsRequest(vm_id=vm_id),
    }
    hostile_values = [
        "\x1b]0;owned\x07\n\x1b[2J" + "A" * 4000,     # escape sequences, a newline, 4 KB
        "/" + "a" * 3990,                              # a long absolute path that does not exist
        images + "/\x1b[31mred\nline",                 # control characters inside the image root
        "file://" + images + "/x\x00y",                # a NUL byte
        "ghcr.io/evil/\x1b[5mblink:latest\r\n",        # an OCI-looking reference with controls
        "123E4567-E89B-12D3-A456-42661417400\n",      # almost a UUID
    ]
    calls = leaked = 0
    for service in (vm_service, host_service):
        module = pb if service is vm_service else host_pb2
        for method in service.methods:
            request_type = getattr(module, method.input_type.name, None)
            if request_type is None:
                continue
            request = base.get(method.name)
            if request is None:
                request = request_type()
                if "vm_id" in request_type.DESCRIPTOR.fields_by_name:
                    request.vm_id = vm_id
            for path in string_fields(request_type.DESCRIPTOR):
                for value in hostile_values:
                    code, details = call(service, method.name, with_value(request, path, value))
                    calls += 1
                    where = f"{method.name} {'.'.join(f.name for f in path)}={value[:24]!r}"
                    # Request text is quoted where the message is built (at most 64 characters
                    # of it), not just cut at the border: no long run of the value survives.
                    if not printable(details) or len(details) > MAX_MESSAGE or re.search(r"[aA]{65}", details):
                        leaked += 1
                        check(False, f"{where}: {code.name}, {len(details)} bytes: {details[:200]!r}")
    check(calls > 100 and leaked == 0,
          f"{calls} calls with hostile strings in every string field of every RPC: messages printable and "
          f"at most {MAX_MESSAGE} bytes ({leaked} leaked)")
    with open(log_path, "rb") as f:
        log = f.read()
    check(b"\x1b" not in log, "no escape character reached the daemon's log")
    check(daemon.poll() is None, "daemon still serving")

    # Leftovers of the hostile creates that were accepted (e.g. a hostile ignition is a valid one).
    for info in pb.ListVmsResponse.FromString(
            channel.unary_unary("/feos.vm.vmm.api.v1.VMService/ListVms",
                                request_serializer=pb.ListVmsRequest.SerializeToString,
                                response_deserializer=lambda b: b)(pb.ListVmsRequest(), timeout=10)).vms:
        if info.vm_id != vm_id:
            call(vm_service, "DeleteVm", pb.DeleteVmRequest(vm_id=info.vm_id))

    # --- paths outside --image-root: one answer, whether they exist or not ---
    answers = {}
    for outside in ("/etc/passwd", "/nonexistent/disk.raw", "/proc/self/mem", f"/proc/{daemon.pid}/mem"):
        c = config()
        c.disks[0].path = outside
        code, details = call(vm_service, "CreateVm", pb.CreateVmRequest(config=c))
        answers[outside] = (code, re.sub(r"vm [0-9a-f-]{36}: ", "vm <id>: ", details.replace(outside, "<path>")))
    shapes = set(answers.values())
    check(len(shapes) == 1 and next(iter(shapes))[0] == grpc.StatusCode.PERMISSION_DENIED,
          f"outside the image root: one answer for existing, missing and /proc files: {shapes}")
    check(all("mem" not in details.replace("/proc/self/mem", "").replace(f"/proc/{daemon.pid}/mem", "")
              for _, details in answers.values()), "the answer shows no resolved path")

    # --- feosd's image cache (inside the roots with --image-root): no request may name it ---
    cache = os.path.join(work, "state", "images")
    cached = os.path.join(cache, "blobs", "sha256", "ab" * 32)
    with open(cached, "wb") as f:
        f.truncate(1 << 20)
    os.symlink(cached, os.path.join(images, "cached-link.raw"))
    for field, path in (("config.disks[0].path", cached),
                        ("config.disks[0].path", os.path.join(images, "cached-link.raw")),
                        ("config.disks[0].path", os.path.join(cache, "vms", "x", "disk.qcow2")),  # missing: not "not found"
                        ("config.image_ref", "file://" + cached)):
        c = config()
        if field == "config.image_ref":
            c.image_ref = path
        else:
            c.disks[0].path = path
        code, details = call(vm_service, "CreateVm", pb.CreateVmRequest(config=c))
        check(code == grpc.StatusCode.INVALID_ARGUMENT and field + ": " in details and "image cache" in details,
              f"a request naming {path} in the image cache is refused: {code.name} {details}")
    os.unlink(os.path.join(images, "cached-link.raw"))
    os.unlink(cached)

    # --- ids compare canonically ---
    upper = vm_id.upper()
    code, details = call(vm_service, "GetVm", pb.GetVmRequest(vm_id=upper))
    check(code == grpc.StatusCode.OK, f"GetVm with the id in upper case finds the VM ({code.name} {details})")
    code, details = call(vm_service, "CreateVm", pb.CreateVmRequest(vm_id=upper, config=config()))
    check(code == grpc.StatusCode.ALREADY_EXISTS, f"CreateVm with the id in upper case: {code.name} {details}")
    fresh = str(uuid.uuid4()).upper()
    created = channel.unary_unary("/feos.vm.vmm.api.v1.VMService/CreateVm",
                                  request_serializer=pb.CreateVmRequest.SerializeToString,
                                  response_deserializer=pb.CreateVmResponse.FromString)(
        pb.CreateVmRequest(vm_id=fresh, config=config()), timeout=15)
    check(created.vm_id == fresh.lower(), f"an upper-case id is stored in lower case: {created.vm_id}")
    call(vm_service, "DeleteVm", pb.DeleteVmRequest(vm_id=fresh))

    # --- stored size: the largest ignitions until the budget is spent; ListVms still fits ---
    refused = None
    big = config()
    big.ignition = "{" + " " * ((1 << 20) - 2) + "}"
    made = 0
    for _ in range(8):
        code, details = call(vm_service, "CreateVm", pb.CreateVmRequest(config=big))
        if code != grpc.StatusCode.OK:
            refused = (code, details)
            break
        made += 1
    check(made == 3 and refused is not None and refused[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
          and "limit" in refused[1], f"after {made} VMs with a 1 MiB ignition (3 fit): {refused}")
    list_vms = channel.unary_unary("/feos.vm.vmm.api.v1.VMService/ListVms",
                                   request_serializer=pb.ListVmsRequest.SerializeToString,
                                   response_deserializer=lambda b: b)
    raw = list_vms(pb.ListVmsRequest(), timeout=10)  # the client's default 4 MiB receive limit
    check(len(raw) < 4 * 1024 * 1024, f"ListVms of the full host: {len(raw)} bytes, under 4 MiB")
    for info in pb.ListVmsResponse.FromString(raw).vms:
        if info.vm_id != vm_id:
            call(vm_service, "DeleteVm", pb.DeleteVmRequest(vm_id=info.vm_id))

    # --- streams past --max-streams ---
    events = channel.unary_stream("/feos.vm.vmm.api.v1.VMService/StreamVmEvents",
                                  request_serializer=pb.StreamVmEventsRequest.SerializeToString,
                                  response_deserializer=pb.VmEvent.FromString)
    held = []
    for _ in range(MAX_STREAMS):
        stream = events(pb.StreamVmEventsRequest(vm_id=vm_id), timeout=60)
        next(stream)  # the snapshot: the stream holds its place now
        held.append(stream)
    code, details = call(vm_service, "StreamVmEvents", pb.StreamVmEventsRequest(vm_id=vm_id))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED and str(MAX_STREAMS) in details,
          f"stream {MAX_STREAMS + 1}: {code.name} {details}")
    code, details = call(vm_service, "GetVm", pb.GetVmRequest(vm_id=vm_id))
    check(code == grpc.StatusCode.OK, "unary calls still served while the streams are full")
    for stream in held:
        stream.cancel()
    time.sleep(0.5)  # the server notices the cancellations within its poll interval
    code, details = call(vm_service, "StreamVmEvents", pb.StreamVmEventsRequest(vm_id=vm_id))
    check(code in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED),
          f"a stream is served again once others closed: {code.name} {details}")

    # --- console streams without an attach message ---
    console = channel.stream_stream("/feos.vm.vmm.api.v1.VMService/StreamVmConsole",
                                    request_serializer=pb.StreamVmConsoleRequest.SerializeToString,
                                    response_deserializer=pb.StreamVmConsoleResponse.FromString)
    try:
        for _ in console(iter([]), timeout=10):
            pass
        check(False, "a console stream closed before attaching is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "attach" in e.details(),
              f"console closed before attach: {e.code().name} {e.details()}")
    stop = threading.Event()

    def never_attach():
        stop.wait(60)
        return
        yield  # a generator that sends nothing while it waits

    started = time.time()
    try:
        for _ in console(never_attach(), timeout=60):
            pass
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
    waited = time.time() - started
    stop.set()
    check(code != grpc.StatusCode.OK and 9 <= waited < 30,
          f"a console stream that never attaches is ended by the server after {waited:.1f} s ({code.name})")
    check(daemon.poll() is None, "daemon still serving at the end")
finally:
    daemon.terminate()
    daemon.wait(timeout=10)
    if failures:
        print(open(log_path, errors="replace").read()[-3000:])
    shutil.rmtree(work, ignore_errors=True)

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
