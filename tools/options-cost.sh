#!/usr/bin/env bash
# What the hardening options cost: ops/s of talloc-stress on the default heap (which reads
# TALLOC_OPTIONS) per profile, with one thread, seed 1 and --check-every 0, for no options,
# canary=1, junk=1, guard=1, quarantine=256 and all four together.
#
# The runs are interleaved: for each profile, every variant runs once back to back, and that
# round is repeated REPEAT times (the variant that starts a round rotates). Each run is timed
# twice: ops/s of wall time (talloc-stress's own figure) and ops per CPU second (the process's
# user + system time, start-up and final drain included), which moves less when other work
# shares the cores. A variant's ratio is the median over the rounds of its rate divided by
# the rate of "no options" in the same round, so load that changes between rounds cancels
# out; the spread is the lowest and highest of those ratios. Prints four Markdown tables (the
# ratios by CPU time and by wall time, the median rates) and the load average before and after.
#
# With --baseline OTHER_BUILD it compares two builds instead, both without options: the ratio
# is BUILD_DIR's ops/s over OTHER_BUILD's (e.g. a build of an older commit).
#
# Usage: tools/options-cost.sh [--baseline OTHER_BUILD] BUILD_DIR [SECONDS_PER_RUN]
#   (default 4 s per run; OPTIONS_COST_REPEAT rounds, default 3; OPTIONS_COST_PROFILES,
#   a space-separated subset of the nine profiles)
# BUILD_DIR is a build of the release preset (cmake --preset release -B DIR && cmake --build DIR).
set -euo pipefail
baseline=""
if [[ ${1:-} == --baseline ]]; then
    baseline=${2:?usage: tools/options-cost.sh [--baseline OTHER_BUILD] BUILD_DIR [SECONDS]}
    shift 2
fi
build=${1:?usage: tools/options-cost.sh [--baseline OTHER_BUILD] BUILD_DIR [SECONDS]}
seconds=${2:-4}
repeat=${OPTIONS_COST_REPEAT:-3}
read -r -a profiles <<<"${OPTIONS_COST_PROFILES:-small mixed large realloc aligned calloc phases cross-thread fragment}"

# Each variant: a label, the talloc-stress binary, the TALLOC_OPTIONS ("" = unset).
labels=() bins=() options=()
variant() { labels+=("$1"); bins+=("$2"); options+=("$3"); }
for dir in "$build" ${baseline:+"$baseline"}; do
    [[ -x $dir/stress/talloc-stress ]] ||
        { echo "options-cost: $dir/stress/talloc-stress not found: build $dir first" >&2; exit 2; }
done
if [[ -n $baseline ]]; then
    variant "baseline" "$baseline/stress/talloc-stress" ""
    variant "this build" "$build/stress/talloc-stress" ""
else
    bin=$build/stress/talloc-stress
    variant "no options" "$bin" ""
    variant "canary=1" "$bin" "canary=1"
    variant "junk=1" "$bin" "junk=1"
    variant "guard=1" "$bin" "guard=1"
    variant "quarantine=256" "$bin" "quarantine=256"
    variant "all four" "$bin" "canary=1:junk=1:guard=1:quarantine=256"
fi
n=${#labels[@]}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Runs a command and writes the CPU time it used (user + system, in seconds) to a file.
cpu_time='import resource, subprocess, sys
subprocess.run(sys.argv[2:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{r.ru_utime + r.ru_stime}\n")'

before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before: $before" >&2
for profile in "${profiles[@]}"; do
    for ((round = 0; round < repeat; round++)); do
        for ((k = 0; k < n; k++)); do
            v=$(((round + k) % n))
            name="$profile.$v.$round"
            python3 -c "$cpu_time" "$out/$name.cpu" \
                env -u TALLOC_OPTIONS ${options[v]:+TALLOC_OPTIONS="${options[v]}"} "${bins[v]}" \
                --quiet --seed 1 --threads 1 --profile "$profile" --check-every 0 \
                --duration "${seconds}s" --repro-dir "$out" --report "$out/$name.json" \
                >/dev/null 2>"$out/$name.err" || true
        done
    done
    echo "  $profile done, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$out" "$repeat" "$seconds" "${labels[@]}" -- "${profiles[@]}" <<'PY'
import json, os, statistics, sys

out, repeat, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rest = sys.argv[4:]
labels, profiles = rest[:rest.index("--")], rest[rest.index("--") + 1:]

def run(p, v, r):
    """(ops per second of wall time, ops per CPU second) of one run, or None when it failed."""
    name = os.path.join(out, f"{p}.{v}.{r}")
    if not os.path.exists(name + ".json") or not os.path.exists(name + ".cpu"):
        return None
    with open(name + ".json") as f:
        rep = json.load(f)
    with open(name + ".cpu") as f:
        cpu = float(f.read())
    if rep["failures"] != 0 or not rep["drained"] or rep["ops_per_s"] <= 0 or cpu <= 0:
        return None
    return rep["ops_per_s"], rep["ops"] / cpu

def ratio_table(which, title):
    print(f"{title} (median over {repeat} rounds, lowest-highest):\n")
    print("| profile | " + " | ".join(labels[1:]) + " |")
    print("|---|" + "---:|" * (len(labels) - 1))
    for p in profiles:
        cells = []
        for v in range(1, len(labels)):
            pairs = [(run(p, v, r), run(p, 0, r)) for r in range(repeat)]
            ratios = [a[which] / b[which] for a, b in pairs if a and b]
            cells.append("-" if not ratios else
                         f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
        print(f"| {p} | " + " | ".join(cells) + " |")
    print()

def rate_table(which, title):
    print(f"{title} (median over {repeat} runs of {seconds} s):\n")
    print("| profile | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for p in profiles:
        cells = []
        for v in range(len(labels)):
            rates = [x[which] for x in (run(p, v, r) for r in range(repeat)) if x]
            cells.append("-" if not rates else f"{statistics.median(rates):,.0f}")
        print(f"| {p} | " + " | ".join(cells) + " |")
    print()

base = labels[0]
ratio_table(1, f"ops per CPU second as a ratio to \"{base}\" in the same round")
ratio_table(0, f"ops/s (wall time) as a ratio to \"{base}\" in the same round")
rate_table(0, "ops/s (wall time)")
rate_table(1, "ops per CPU second (user + system, start-up and final drain included)")

# Every run that gave no number: its first line on stderr.
for name in sorted(f[:-4] for f in os.listdir(out) if f.endswith(".err")):
    p, v, r = name.rsplit(".", 2)
    if run(p, int(v), int(r)) is None:
        with open(os.path.join(out, name + ".err")) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        print(f"{p}, {labels[int(v)]}, round {r}: " + (lines[0] if lines else "no report"))
PY
echo "Load average (1, 5, 15 min): $before before, $after after; $(nproc) cores."
