# Benchmark cases of the end-to-end suite (sourced by l1-suite.sh; not in the default list: run
# them by name, E2E_CASES=bench_start,final_state, or `ctest -R bench_e2e_start`).

# bench_start: StartVm to running for a VM with a passed card (B: on pcie.0, so its RAM is not
# bound to a node and any node's hugepages serve it) at three memory sizes (E2E_BENCH_SIZES, MiB),
# with 4 KiB pages and with 2 MiB hugepages reserved in L1 for it. L1's real kernel pins the guest
# RAM for VFIO (vfio_iommu_type1) before the guest runs, as on a GPU host; feosd has qemu
# preallocate it first (prealloc-threads). Prints a table: seconds per size and page size, their
# ratio, and the growth per GiB between the smallest and the largest size; the "memory" events
# feosd stored for each start as evidence.
case_bench_start() {
  need_gpu_cli || return 0
  local sizes=${E2E_BENCH_SIZES:-256 512 1024} largest pool=/sys/kernel/mm/hugepages/hugepages-2048kB
  local mnt=/dev/hugepages mounted="" pages id t0 secs rows="" size kind
  largest=$(tr ' ' '\n' <<<"$sizes" | sort -n | tail -1)
  if ! grep -q "^[^ ]* $mnt hugetlbfs " /proc/mounts; then
    mkdir -p "$mnt" && mount -t hugetlbfs -o pagesize=2M none "$mnt" && mounted=1
  fi
  for kind in 4K 2M; do
    if [ "$kind" = 2M ]; then  # reserved only now: the 4 KiB runs keep L1's whole memory
      echo $((largest / 2 + 8)) > "$pool/nr_hugepages"
      pages=$(cat "$pool/nr_hugepages")
      ev "L1: $(grep -E 'Hugepagesize|HugePages_(Total|Free)' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
      check "L1 reserved $((largest / 2)) hugepages of 2 MiB ($pages)" [ "$pages" -ge $((largest / 2)) ]
    fi
    for size in $sizes; do
      local args=(--gpu "$CARD_B$NOROM" --kernel "$VMLINUX" --initramfs "$INITRD_L2" --cmdline "$L2_CMDLINE"
        --vcpus 2 --memory "$size")
      [ "$kind" = 2M ] && args+=(--hugepages 2M)
      id=$(ctl vm create "${args[@]}" 2>&1 | tail -1)
      if ! [[ $id =~ ^[0-9a-f-]{36}$ ]]; then bad "vm create ($kind, $size MiB): $id"; continue; fi
      t0=$(now)
      if ! ctl vm start "$id" > "$E2E_RESULTS/.bench.out" 2>&1; then
        bad "vm start ($kind, $size MiB): $(tail -1 "$E2E_RESULTS/.bench.out")"
        ctl vm delete "$id" >/dev/null 2>&1
        continue
      fi
      secs=$(since "$t0")
      rows="$rows$kind $size $secs"$'\n'
      ev "$kind $size MiB: running $secs s after StartVm; events: $(ctl vm events "$id" --no-follow --tail 20 2>/dev/null \
        | grep -E 'preallocating|memory ready|running after' | sed -E 's/^.*(preallocating|guest memory|running after)/\1/' \
        | tr '\n' ';')"
      [ "$kind" = 2M ] && ev "  qemu's backend: $(tr '\0' '\n' < "/proc/$(qemu_of "$id")/cmdline" | grep '^memory-backend')"
      delete_vm "$id"
    done
  done
  echo 0 > "$pool/nr_hugepages"
  [ -n "$mounted" ] && umount "$mnt"
  check "every start ran ($(grep -c . <<<"$rows") of 6)" [ "$(grep -c . <<<"$rows")" -eq 6 ]
  echo "    BENCH StartVm to running, card B passed, 2 vCPUs (seconds; L1 under TCG)"
  awk -v sizes="$sizes" '
    { t[$1 " " $2] = $3 }
    END {
      n = split(sizes, s, " ")
      printf "    BENCH %8s %10s %10s %8s\n", "MiB", "4 KiB", "2 MiB", "4K/2M"
      for (i = 1; i <= n; i++) {
        a = t["4K " s[i]]; b = t["2M " s[i]]
        printf "    BENCH %8d %10.1f %10.1f %8s\n", s[i], a, b, (b > 0 ? sprintf("%.2f", a / b) : "-")
      }
      gib = (s[n] - s[1]) / 1024
      if (gib > 0)
        printf "    BENCH growth per GiB (%d to %d MiB): 4 KiB %.1f s, 2 MiB %.1f s\n", s[1], s[n],
               (t["4K " s[n]] - t["4K " s[1]]) / gib, (t["2M " s[n]] - t["2M " s[1]]) / gib
    }' <<<"$rows" | tee -a "$E2E_RESULTS/bench.txt"
}
