#!/usr/bin/env bash
# The main job: builds the libFuzzer targets (clang, ASan+UBSan), talloc-replay and
# talloc-stress, runs every target for a time budget on one core each, fuzzing into a working
# corpus under build/fuzz-work/<target>/ seeded from corpus/<target>/, then a short stress run
# of every profile on two threads, and ends with a table per target (runs, exec/s, edges
# covered, new inputs, crashes) and the stress summary. A crash leaves its input in
# build/fuzz-work/<target>/crashes/ and the table is followed by the command reproducing it.
#
# Usage: tools/run-main.sh [target...]        (default: every target)
# Environment: TALLOC_FUZZ_SECONDS   seconds per target (default 60)
#              TALLOC_STRESS_SECONDS seconds of stress (default 30; 0 skips it)
#              TALLOC_FUZZ_WORK      working directory (default build/fuzz-work)
# Exit status: 0 when no target crashed and the stress run passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
budget=${TALLOC_FUZZ_SECONDS:-60}
work=${TALLOC_FUZZ_WORK:-build/fuzz-work}

echo "=== building the fuzz targets (preset fuzz) and talloc-replay (preset release) ==="
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
cmake --preset release >/dev/null
cmake --build --preset release --target talloc-replay talloc-stress

targets=("$@")
if ((${#targets[@]} == 0)); then
    for bin in build/fuzz/fuzz/fuzz_*; do
        [[ -x $bin ]] && targets+=("$(basename "$bin")")
    done
fi

# libFuzzer flags from fuzz/<target>.options ([libfuzzer] key = value lines).
options_for() {
    local file=fuzz/$1.options
    [[ -f $file ]] || return 0
    sed -n 's/^[[:space:]]*\([a-z_]*\)[[:space:]]*=[[:space:]]*\(.*\)$/\1 \2/p' "$file" |
        while read -r key value; do
            [[ $key == dict ]] && value=fuzz/$value
            printf -- '-%s=%s\n' "$key" "$value"
        done
}

stat_of() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }

rows=()
crashed=0
for target in "${targets[@]}"; do
    dir=$work/$target
    mkdir -p "$dir/corpus" "$dir/crashes"
    echo "=== $target: fuzzing for ${budget}s ==="
    mapfile -t opts < <(options_for "$target")
    seeds=()
    [[ -d corpus/$target ]] && seeds+=("corpus/$target")
    set +e
    build/fuzz/fuzz/"$target" -max_total_time="$budget" -print_final_stats=1 \
        -artifact_prefix="$dir/crashes/" "${opts[@]}" "$dir/corpus" "${seeds[@]}" \
        >"$dir/log" 2>&1
    set -e
    tail -3 "$dir/log"
    runs=$(stat_of "$dir/log" number_of_executed_units)
    speed=$(stat_of "$dir/log" average_exec_per_sec)
    new=$(stat_of "$dir/log" new_units_added)
    edges=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
    crashes=$(find "$dir/crashes" -type f | wc -l)
    ((crashes == 0)) || crashed=1
    rows+=("$(printf '%-22s %10s %8s %7s %6s %8s' "$target" "${runs:-?}" "${speed:-?}" \
        "${edges:-?}" "${new:-?}" "$crashes")")
done

stress_seconds=${TALLOC_STRESS_SECONDS:-30}
stress_status=0
if ((stress_seconds > 0)); then
    echo "=== stress: every profile, 2 threads, ${stress_seconds}s ==="
    set +e
    build/release/stress/talloc-stress --duration "${stress_seconds}s" --threads 2 --quiet \
        --report "$work/stress-report.json" --repro-dir "$work" >"$work/stress.log" 2>&1
    stress_status=$?
    set -e
fi

echo
echo "=== summary: ${budget}s per target ==="
printf '%-22s %10s %8s %7s %6s %8s\n' target runs exec/s edges new crashes
printf '%s\n' "${rows[@]}"
if ((crashed)); then
    echo
    echo "crash inputs (reproduce each with the command shown):"
    find "$work" -path '*/crashes/*' -type f | while read -r f; do
        echo "  build/release/tools/talloc-replay $f"
    done
fi
if ((stress_seconds > 0)); then
    echo
    echo "=== stress summary (build/release/stress/talloc-stress; report in $work/stress-report.json) ==="
    cat "$work/stress.log"
fi
((stress_status == 0)) || crashed=1
exit $crashed
