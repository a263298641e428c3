#!/usr/bin/env bash
# Runs every benchmark workload at a tiny scale once on the C library's malloc and once with
# LD_PRELOAD=MALLOC_LIB, and fails unless each run exits 0 and both print the same checksum.
# No time is checked. Registered with ctest as bench_checksums.
#
# Usage: bash bench/check-checksums.sh MALLOC_LIB BENCH_DIR [SCALE]
#   MALLOC_LIB  libtallocator-malloc.so (or any malloc to preload)
#   BENCH_DIR   the directory holding the bench_* executables
#   SCALE       work scale passed to each workload (default 0.01)
set -euo pipefail
[[ $# -ge 2 && $# -le 3 ]] || { echo "usage: check-checksums.sh MALLOC_LIB BENCH_DIR [SCALE]" >&2; exit 2; }
lib=$1
dir=$2
scale=${3:-0.01}
[[ -f $lib ]] || { echo "check-checksums: $lib not found" >&2; exit 2; }

# name and arguments; bench_scaling takes a live count and a step count instead of a scale
runs=(
    "bench_pair $scale" "bench_pair $scale 200" "bench_lifo $scale" "bench_fifo $scale"
    "bench_churn $scale 1000" "bench_churn $scale 100000" "bench_shortlived $scale"
    "bench_pareto $scale" "bench_realloc $scale" "bench_large $scale" "bench_server $scale"
    "bench_prodcons $scale" "bench_threadrand $scale" "bench_scaling 1000 20000"
)

checksum() { sed -n 's/.*checksum=\([0-9]*\).*/\1/p' <<<"$1"; }

failed=0
for run in "${runs[@]}"; do
    read -r -a argv <<<"$run"
    argv[0]=$dir/${argv[0]}
    status=0
    plain=$("${argv[@]}") || status=$?
    ((status == 0)) || { echo "FAIL $run: exit status $status on glibc" >&2; failed=1; continue; }
    preloaded=$(LD_PRELOAD=$lib "${argv[@]}") || status=$?
    ((status == 0)) || { echo "FAIL $run: exit status $status preloaded" >&2; failed=1; continue; }
    a=$(checksum "$plain")
    b=$(checksum "$preloaded")
    if [[ -z $a || $a != "$b" ]]; then
        echo "FAIL $run: checksum '$a' on glibc, '$b' preloaded" >&2
        failed=1
    else
        echo "ok   $run: checksum $a"
    fi
done
exit $failed
