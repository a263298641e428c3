#!/usr/bin/env bash
# Throughput and memory of talloc-stress per profile, with 1 and 2 threads, on every allocator
# it drives, all measured in the same session: TAlloc with its periodic checks off and on,
# glibc (--allocator system), and jemalloc, mimalloc and tcmalloc when installed
# (tools/install-deps.sh --bench-allocators; a missing one shows as "-").
#
# Each cell is one run of `talloc-stress --seed 1 --profile P --threads T --duration S` with
# --check-every 0, except the "checks on" column (the default --check-every 100000). Prints
# three Markdown tables: ops/s; ops/s as a ratio to glibc; and RSS in MiB at the start, the
# peak (the highest sample: every 2 s and at each check) and after the final drain, from each
# run's JSON report.
#
# Usage: tools/stress-compare.sh [SECONDS_PER_RUN]   (default 5)
# Builds the release preset into TALLOC_BUILD_DIR (default build/release) first.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
build=${TALLOC_BUILD_DIR:-build/release}
cmake --preset release -B "$build" >/dev/null
cmake --build "$build" --target talloc-stress >/dev/null
bin=$build/stress/talloc-stress
profiles=(small mixed large realloc aligned calloc phases cross-thread fragment)
allocators=(talloc system jemalloc mimalloc tcmalloc)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One run; its JSON report lands in $out/NAME.json (none when the allocator is missing).
run() {
    local name=$1
    shift
    "$bin" --quiet --seed 1 --duration "${seconds}s" --repro-dir "$out" \
        --report "$out/$name.json" "$@" >/dev/null 2>"$out/$name.err" || true
}

for profile in "${profiles[@]}"; do
    for threads in 1 2; do
        common=(--profile "$profile" --threads "$threads")
        run "talloc-on-$profile-$threads" "${common[@]}" --check-every 100000
        for a in "${allocators[@]}"; do
            run "$a-$profile-$threads" "${common[@]}" --check-every 0 --allocator "$a"
        done
    done
done

python3 - "$out" "${profiles[@]}" <<'PY'
import json, os, sys

out, profiles = sys.argv[1], sys.argv[2:]
allocs = ["talloc", "system", "jemalloc", "mimalloc", "tcmalloc"]
label = {"talloc": "TAlloc", "system": "glibc", "jemalloc": "jemalloc",
         "mimalloc": "mimalloc", "tcmalloc": "tcmalloc"}

def report(name):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        r = json.load(f)
    return r if r["failures"] == 0 and r["drained"] else None

def rate(r):
    return "-" if r is None else f"{r['ops_per_s']:,.0f}"

rows = [(p, t) for p in profiles for t in (1, 2)]
print("ops/s:\n")
print("| profile | threads | TAlloc, checks off | TAlloc, checks on | "
      + " | ".join(label[a] for a in allocs[1:]) + " |")
print("|---|---:|" + "---:|" * (len(allocs) + 1))
for p, t in rows:
    cells = [rate(report(f"talloc-{p}-{t}")), rate(report(f"talloc-on-{p}-{t}"))]
    cells += [rate(report(f"{a}-{p}-{t}")) for a in allocs[1:]]
    print(f"| {p} | {t} | " + " | ".join(cells) + " |")

print("\nops/s as a ratio to glibc (checks off everywhere):\n")
others = [a for a in allocs if a != "system"]
print("| profile | threads | " + " | ".join(label[a] for a in others) + " |")
print("|---|---:|" + "---:|" * len(others))
for p, t in rows:
    base = report(f"system-{p}-{t}")
    cells = []
    for a in others:
        r = report(f"{a}-{p}-{t}")
        ok = r is not None and base is not None and base["ops_per_s"] > 0
        cells.append(f"{r['ops_per_s'] / base['ops_per_s']:.2f}" if ok else "-")
    print(f"| {p} | {t} | " + " | ".join(cells) + " |")

mib = lambda n: f"{n / 1048576:.1f}"
print("\nRSS in MiB, start / peak / after the final drain (checks off):\n")
print("| profile | threads | " + " | ".join(label[a] for a in allocs) + " |")
print("|---|---:|" + "---|" * len(allocs))
for p, t in rows:
    cells = []
    for a in allocs:
        r = report(f"{a}-{p}-{t}")
        cells.append("-" if r is None else
                     f"{mib(r['rss_start'])} / {mib(r['rss_peak'])} / {mib(r['rss_after_drain'])}")
    print(f"| {p} | {t} | " + " | ".join(cells) + " |")

# Every run that gave no cell: the allocator is not installed, or the run failed.
for name in sorted(f[:-4] for f in os.listdir(out) if f.endswith(".err")):
    if report(name) is None:
        with open(os.path.join(out, name + ".err")) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        print(f"\n{name}: " + (lines[0] if lines else "no report"))
PY
