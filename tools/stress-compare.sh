#!/usr/bin/env bash
# Throughput of talloc-stress per profile, TAlloc against the system allocator (glibc) in the
# same session, with 1 and 2 threads, and TAlloc with its periodic checks off and on.
# Prints a Markdown table; ratios are TAlloc / glibc. Builds the release preset first.
# Usage: tools/stress-compare.sh [SECONDS_PER_RUN]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
cmake --preset release >/dev/null
cmake --build --preset release --target talloc-stress >/dev/null
bin=build/release/stress/talloc-stress
profiles=(small mixed large realloc aligned calloc phases cross-thread fragment)

# ops/s of one run: talloc-stress prints "ops N (R ops/s)" in its summary.
rate() {
    "$bin" --quiet --seed 1 --duration "${seconds}s" "$@" | sed -n 's/.*ops [0-9]* (\([0-9]*\) ops\/s).*/\1/p'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }'; }

echo "| profile | threads | TAlloc, checks off | TAlloc, checks every 100000 | glibc | TAlloc/glibc (checks off) |"
echo "|---|---:|---:|---:|---:|---:|"
for profile in "${profiles[@]}"; do
    for threads in 1 2; do
        off=$(rate --profile "$profile" --threads "$threads" --check-every 0)
        on=$(rate --profile "$profile" --threads "$threads" --check-every 100000)
        sys=$(rate --profile "$profile" --threads "$threads" --allocator system)
        echo "| $profile | $threads | $off | $on | $sys | $(ratio "$off" "$sys") |"
    done
done
