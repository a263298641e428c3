#!/usr/bin/env bash
# Wall time and peak RSS of the real programs of tests/programs/run_programs.sh, on TAlloc
# (LD_PRELOAD of BUILD_DIR's libtallocator-malloc.so) against the C library's malloc, in the
# same session: every round runs each program on glibc and then on TAlloc, and each round is
# also a full test run (a round whose outputs differ stops the measurement).
#
# A program's time is the sum of its steps' wall times (/usr/bin/time %e); its peak RSS is the
# largest maximum resident set size of any process in any of its steps (%M). The table shows
# the median over the rounds; ratios are TAlloc / glibc.
#
# Usage: tools/bench-programs.sh [--runs N] [--scale N] BUILD_DIR [PROGRAM...]
#   --runs N    rounds (default 5)
#   --scale N   TALLOC_PROGRAMS_SCALE for the rounds (default 1, the size the tests use)
# BUILD_DIR is an unsanitized build (release or clang preset) with libtallocator-malloc built.
set -euo pipefail

runs=5
scale=1
usage() {
    echo "usage: tools/bench-programs.sh [--runs N] [--scale N] BUILD_DIR [PROGRAM...]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    case $1 in
    --runs) [[ $# -ge 2 ]] || usage; runs=$2; shift 2 ;;
    --scale) [[ $# -ge 2 ]] || usage; scale=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) break ;;
    esac
done
[[ $# -ge 1 ]] || usage
[[ $runs =~ ^[1-9][0-9]*$ && $scale =~ ^[1-9][0-9]*$ ]] || usage
build=$1
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib=$build/allocator/libtallocator-malloc.so
[[ -f $lib ]] || { echo "bench-programs: $lib not found: build the talloc_malloc target first" >&2; exit 2; }

if [[ ! -x /usr/bin/time ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null; } || true
    fi
    [[ -x /usr/bin/time ]] || { echo "bench-programs: /usr/bin/time is missing: install the package 'time'" >&2; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-programs.XXXXXX")
trap 'rm -rf "$work"' EXIT
samples=$work/samples   # lines: program side seconds kilobytes
: >"$samples"

for ((round = 1; round <= runs; round++)); do
    echo "round $round of $runs" >&2
    if ! TALLOC_PROGRAMS_TIMING=1 TALLOC_PROGRAMS_SCALE=$scale \
        "$root/tests/programs/run_programs.sh" "$lib" "$work/run" "$@" >"$work/round.log" 2>&1; then
        cat "$work/round.log" >&2
        echo "bench-programs: round $round failed its checks; nothing measured" >&2
        exit 1
    fi
    for program in $(sed -n 's/^== //p' "$work/round.log"); do
        dir=$work/run/$program/results
        for side in glibc talloc; do
            cat "$dir/$side"/*.time |
                awk -v p="$program" -v s="$side" '
                    # /usr/bin/time -o writes "Command exited with non-zero status" first when
                    # it did; run_programs.sh has already failed the round then
                    NF == 2 { t += $1; if ($2 > m) m = $2 }
                    END { printf "%s %s %.2f %d\n", p, s, t, m }' >>"$samples"
        done
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
pick() { awk -v p="$1" -v s="$2" -v c="$3" '$1 == p && $2 == s { print $c }' "$samples" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

echo "| program | glibc time | TAlloc time | ratio | glibc peak RSS | TAlloc peak RSS | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for program in $(cut -d' ' -f1 "$samples" | awk '!seen[$0]++'); do
    gt=$(pick "$program" glibc 3)
    tt=$(pick "$program" talloc 3)
    gm=$(pick "$program" glibc 4)
    tm=$(pick "$program" talloc 4)
    printf '| %s | %.2f s | %.2f s | %s | %s | %s | %s |\n' "$program" "$gt" "$tt" "$(ratio "$tt" "$gt")" \
        "$(mib "$gm")" "$(mib "$tm")" "$(ratio "$tm" "$gm")"
done
echo
echo "Median of $runs rounds, scale $scale; $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores," \
     "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); $(uname -sr)."
