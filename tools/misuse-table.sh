#!/usr/bin/env bash
# The misuse catalog (tests/misuse/misuse_cases.c) measured three ways: on TAlloc through
# libtallocator-malloc.so with the default options, on TAlloc with every hardening option the
# catalog uses (the union of the cases' TALLOC_OPTIONS), and on the C library's own allocator.
# Prints a Markdown table, one row per case; each cell is the outcome:
#   TAlloc: the report line without "talloc: " and the address, with the signal
#           ("double free (SIGABRT)"), or "SIGSEGV", "not detected", "hang (killed after 10 s)";
#           a report that differs from the line the case expected is shown with it;
#   glibc:  its message with the signal ("free(): double free detected in tcache 2 (SIGABRT)"),
#           or "SIGSEGV", "not detected", "hang (killed after 10 s)".
# A case decided by a race or a timer (RUNS = repeat in `misuse_cases --list`) runs
# TALLOC_MISUSE_RUNS times (default 20); when its runs differ, the cell counts each outcome.
#
# Usage: tools/misuse-table.sh BUILD_DIR    (a build of the release or clang preset)
set -euo pipefail
build=${1:?usage: tools/misuse-table.sh BUILD_DIR}
cases_bin=$build/tests/misuse/misuse_cases
lib=$build/allocator/libtallocator-malloc.so
runs=${TALLOC_MISUSE_RUNS:-20}
for f in "$cases_bin" "$lib"; do
    [[ -f $f ]] || { echo "misuse-table: $f not found: build $build first" >&2; exit 2; }
done
cases_bin=$(cd "$(dirname "$cases_bin")" && pwd)/misuse_cases
lib=$(cd "$(dirname "$lib")" && pwd)/libtallocator-malloc.so
ulimit -c 0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

mapfile -t catalog < <("$cases_bin" --list)
# Every hardening option any case needs, each once.
all_options=$(for line in "${catalog[@]}"; do
    read -r _ _ options _ <<<"$line"
    tr ':,' '\n\n' <<<"${options#TALLOC_OPTIONS=}"
done | sed '/^$/d' | sort -u | paste -sd, -)

# The outcome of one run in words: run_once MODE CASE OPTIONS (MODE talloc or glibc).
run_once() {
    local mode=$1 name=$2 options=$3 status=0
    if [[ $mode == talloc ]]; then
        { env LD_PRELOAD="$lib" TALLOC_OPTIONS="$options" timeout -s KILL 60 \
            "$cases_bin" "$name" >"$out/stdout" 2>"$out/stderr"; } 2>/dev/null || status=$?
    else
        { env -u LD_PRELOAD -u TALLOC_OPTIONS timeout -s KILL 60 \
            "$cases_bin" "$name" >"$out/stdout" 2>"$out/stderr"; } 2>/dev/null || status=$?
    fi
    local signal=""
    if ((status > 128)); then
        signal=SIG$(kill -l $((status - 128)))
    fi
    case $status in
        0) echo "not detected"; return ;;
        3) echo "layout not reached"; return ;;
        137) echo "hang (killed after 60 s)"; return ;;
        142) echo "hang (killed after 10 s)"; return ;;
    esac
    local line expected
    if [[ $mode == talloc ]]; then
        line=$(grep -m1 '^talloc: ' "$out/stderr" || true)
        expected=$(sed -n 's/^expect: //p' "$out/stdout")
        if [[ -z $line ]]; then
            echo "${signal:-exit $status}"
        elif [[ $line == "$expected" ]]; then
            echo "$(strip_address "$line") ($signal)"
        else
            echo "$(strip_address "$line") ($signal; expected $(strip_address "$expected"))"
        fi
    else
        line=$(sed '/^$/d' "$out/stderr" | tail -n 1)
        if [[ -n $line && $signal == SIGABRT ]]; then
            echo "$line ($signal)"
        else
            echo "${signal:-exit $status}"
        fi
    fi
}

# "talloc: double free 0x7f..." -> "double free"
strip_address() {
    sed -e 's/^talloc: //' -e 's/ \(0x[0-9a-f]*\|(nil)\)$//' <<<"$1"
}

# One cell: the case run once, or `runs` times with each distinct outcome counted.
cell() {
    local mode=$1 name=$2 options=$3 count=$4
    for ((i = 0; i < count; i++)); do
        run_once "$mode" "$name" "$options"
    done | sort | uniq -c | sort -rn | awk -v n="$count" '
        { c = $1; sub(/^ *[0-9]+ /, ""); text[NR] = $0; times[NR] = c }
        END {
            if (NR == 1) { printf "%s", text[1]; exit }
            for (i = 1; i <= NR; i++)
                printf "%s%s (%d of %d runs)", (i > 1 ? "; " : ""), text[i], times[i], n
        }' | sed 's/|/\\|/g'
}

glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || echo "glibc")
echo "| misuse case | TAlloc (default options) | TAlloc (all options) | $glibc |"
echo "|---|---|---|---|"
for line in "${catalog[@]}"; do
    read -r name _ _ how <<<"$line"
    count=1
    [[ $how == repeat ]] && count=$runs
    printf '| `%s` | %s | %s | %s |\n' "$name" "$(cell talloc "$name" "" "$count")" \
        "$(cell talloc "$name" "$all_options" "$count")" "$(cell glibc "$name" "" "$count")"
done
echo
echo "All options: TALLOC_OPTIONS=${all_options:-(none yet)}. Cases marked repeat ran $runs times."
