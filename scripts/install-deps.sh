#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need, from Debian's archive, then
# checks that every tool they invoke is really there. Idempotent: installs nothing when every
# package is present. Needs root (or sudo).
#
# The table below is the one list of outside tools: each row is a Debian package and what it must
# provide afterwards. A script, test or benchmark that starts using a new command adds it here, in
# the row of the package that ships it (`dpkg -S $(command -v NAME)` tells which). Entries:
#   NAME          a command that must be on PATH
#   /PATH         a file that must exist (libraries, data files, firmware)
#   py:MODULE     a module /usr/bin/python3 must import (the tests use Debian's python, not pyenv's)
# Packages without entries are build-time libraries, checked by CMake when it configures.
set -euo pipefail
requirements=(
  # build
  "build-essential      gcc g++ make"
  "cmake                cmake ctest"
  "ninja-build          ninja"
  "pkg-config           pkg-config"
  "protobuf-compiler    protoc"
  "protobuf-compiler-grpc grpc_cpp_plugin grpc_python_plugin"
  "libgrpc++-dev" "libprotobuf-dev" "libsqlite3-dev" "libspdlog-dev" "libfmt-dev" "libcli11-dev"
  "nlohmann-json3-dev" "libexpected-dev" "libgtest-dev" "libgmock-dev" "libbenchmark-dev"
  "libpci-dev"
  # registry images (src/image): libcurl for the distribution API, OpenSSL for sha256 and the CA store
  "libcurl4-openssl-dev" "libssl-dev"
  # PCI names and the inventory benchmark's reference (lspci)
  "pciutils             lspci setpci"
  "pci.ids              /usr/share/misc/pci.ids"
  # Python client test (python_client_test.py)
  "python3              /usr/bin/python3 py:lzma"
  "python3-grpcio       py:grpc"
  "python3-protobuf     py:google.protobuf"
  # process tests, the emulated GPU host, the test guests
  "procps               ps pgrep pkill free"
  "qemu-system-x86      qemu-system-x86_64"
  "qemu-utils           qemu-img"
  # registry image tests (tests/image): a real registry, its htpasswd, the token server's JWTs
  "docker-registry      /usr/bin/docker-registry"
  "apache2-utils        htpasswd"
  "python3-jwt          py:jwt"
  "python3-cryptography py:cryptography"
  "busybox-static       /bin/busybox"
  # FeOS's scenarios (feos_scenario_test.py): a registry image SeaBIOS boots (FAT + syslinux), a tap
  "dosfstools           mkfs.fat"
  "mtools               mcopy"
  "syslinux             syslinux"
  "iproute2             ip"
  # UEFI guests (QEMU firmware descriptors and OVMF) and the firmware proof (tests/firmware)
  "ovmf                 /usr/share/qemu/firmware/60-edk2-x86_64.json /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_VARS_4M.fd"
  "cpio                 cpio"
  "kmod                 modprobe depmod"
  "xz-utils             xz"
  "file                 file"
  "openssl              openssl"
  "bc                   bc"
  "util-linux           setpriv setsid"
  "passwd               groupadd groupdel"
  # fuzzers (clang, libFuzzer and the sanitizer runtimes; llvm-symbolizer for readable reports)
  "clang                clang clang++"
  "libclang-rt-dev"
  "llvm                 llvm-symbolizer"
)

packages=()
for row in "${requirements[@]}"; do
  read -r pkg _ <<<"$row"
  packages+=("$pkg")
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Every tool the project invokes must now be present: a package that was on the development
# machine by accident would otherwise show up only as a failing test on a fresh one.
absent=()
for row in "${requirements[@]}"; do
  read -r pkg entries <<<"$row"
  for entry in $entries; do
    case $entry in
      py:*) /usr/bin/python3 -c "import ${entry#py:}" 2>/dev/null && continue ;;
      /*) [ -e "$entry" ] && continue ;;
      *) PATH=$PATH:/usr/sbin:/sbin command -v "$entry" >/dev/null && continue ;;  # sbin: not on a user's PATH
    esac
    absent+=("$entry (package $pkg)")
  done
done
if [ ${#absent[@]} -ne 0 ]; then
  echo "install-deps: missing after installation:" >&2
  printf '  %s\n' "${absent[@]}" >&2
  exit 1
fi
echo "install-deps: every tool the build, tests, demo and benchmarks invoke is present"
