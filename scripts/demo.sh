#!/usr/bin/env bash
# The main job on a machine without a GPU host: builds feosd and feosctl, boots an emulated GPU
# host (outer qemu, Intel vIOMMU, GPU-like cards, the real kernel's vfio-pci), and inside it runs
# feosd from this build: `feosctl gpu list` shows the cards, a VM is created with card A by its
# function 0 (both functions are passed), the guest prints what it sees and its drivers bind, the
# VM is deleted and the card is back on its host drivers. About 5 minutes on 2 cores, no KVM.
# On a real GPU host, run feosd and feosctl directly (README.md, "Using it on a GPU host").
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "Installing missing packages"
scripts/install-deps.sh
step "Building feosd and feosctl (build/)"
scripts/build.sh >/dev/null
step "Emulated GPU host: host layout, then one VM with a whole GPU"
E2E_CASES=host_layout,gpu_one tests/e2e/run.sh build
step "Done. Full log: build/e2e/results/l1-console.log; every case: tests/e2e/run.sh build"
