#!/usr/bin/env bash
# The benchmark suite in one command. Builds the release preset, runs every workload of bench/
# on glibc (no preload), TAlloc (build/release/allocator/libtallocator-malloc.so), jemalloc,
# mimalloc and tcmalloc (LD_PRELOAD; an allocator that is not installed is skipped), then
# bench_scaling under each TAlloc policy, and prints Markdown tables of the medians. The raw
# samples go to --out as CSV; unless --no-docs, docs/performance.md and docs/performance.png
# are rewritten from this run.
#
# Usage: tools/bench.sh [--reps N] [--scale X] [--quick] [--programs] [--out DIR] [--no-docs]
#   --reps N    repetitions, at least 5 (default 5); each one runs every allocator once per
#               workload, in an order rotated by one from the previous repetition
#   --scale X   work scale passed to every workload (default 1; 0.5 halves the work)
#   --quick     tests the script: 1 repetition (unless --reps) at scale 0.05 (unless --scale);
#               the generated docs say it was a quick run
#   --programs  also runs tools/bench-programs.sh (real programs, TAlloc against glibc)
#   --out DIR   where the CSV samples and the tables go (default build/bench)
#   --no-docs   leaves docs/ alone
# TALLOC_BENCH_BUILD=DIR uses an existing build directory (with bench/ and allocator/ built)
# instead of building the release preset.
#
# Exit status 0 on success; 1 when a workload fails or its checksum differs between
# allocators (or between TAlloc's policies); 2 on a usage error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
invocation="${TALLOC_BENCH_BUILD:+TALLOC_BENCH_BUILD=$TALLOC_BENCH_BUILD }tools/bench.sh${*:+ $*}"
reps=""
scale=""
quick=0
programs=0
out=$root/build/bench
docs=1

usage() {
    echo "usage: tools/bench.sh [--reps N] [--scale X] [--quick] [--programs] [--out DIR] [--no-docs]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    case $1 in
    --reps) [[ $# -ge 2 ]] || usage; reps=$2; shift 2 ;;
    --scale) [[ $# -ge 2 ]] || usage; scale=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --programs) programs=1; shift ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
    --no-docs) docs=0; shift ;;
    *) usage ;;
    esac
done
if ((quick)); then
    reps=${reps:-1}
    scale=${scale:-0.05}
fi
reps=${reps:-5}
scale=${scale:-1}
[[ $reps =~ ^[1-9][0-9]*$ ]] || usage
((quick || reps >= 5)) || { echo "bench: --reps must be at least 5 (or use --quick)" >&2; exit 2; }
if ! [[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v s="$scale" 'BEGIN { exit !(s > 0) }'; then
    usage
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

die() {
    echo "bench: $*" >&2
    exit 1
}
note() { echo "bench: $*" >&2; }

# ---- tools, build, allocators -------------------------------------------------------------

install_tools() {
    "$root/tools/install-deps.sh" --bench-allocators ||
        note "installing the comparison allocators failed; the missing ones are skipped"
    command -v gnuplot >/dev/null && return
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null; } ||
            true
    fi
    command -v gnuplot >/dev/null || note "gnuplot is missing (package gnuplot-nox): no chart"
}

build_suite() {
    if [[ -n ${TALLOC_BENCH_BUILD:-} ]]; then
        build=$(cd "$TALLOC_BENCH_BUILD" && pwd)
        note "using the existing build $build"
    else
        (cd "$root" && cmake --preset release >&2 && cmake --build --preset release >&2)
        build=$root/build/release
    fi
    [[ -f $build/allocator/libtallocator-malloc.so ]] || die "$build has no allocator/libtallocator-malloc.so"
    [[ -x $build/bench/bench_scaling ]] || die "$build has no bench/ workloads"
}

# The path ldconfig knows for a library name, or nothing.
find_library() { ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n && !found { print $NF; found = 1 }' || true; }

# talloc-hardened is TAlloc with every hardening option: it runs in the rotation like the
# others, and its table compares it with TAlloc's defaults (the peers' table and the chart
# leave it out).
all_allocators=(glibc talloc jemalloc mimalloc tcmalloc talloc-hardened)
peers=(talloc jemalloc mimalloc tcmalloc)
hardened_options=canary=1:junk=1:guard=1:quarantine=256
declare -A label=([glibc]=glibc [talloc]=TAlloc [jemalloc]=jemalloc [mimalloc]=mimalloc
                  [tcmalloc]=tcmalloc [talloc-hardened]="TAlloc hardened")
declare -A alloc_options=([talloc-hardened]=$hardened_options)
declare -A library
find_allocators() {
    library=([glibc]="" [talloc]=$build/allocator/libtallocator-malloc.so
             [jemalloc]=$(find_library libjemalloc.so.2) [mimalloc]=$(find_library libmimalloc.so.2)
             [tcmalloc]=$(find_library libtcmalloc_minimal.so.4)
             [talloc-hardened]=$build/allocator/libtallocator-malloc.so)
    present=()
    for a in "${all_allocators[@]}"; do
        if [[ $a == glibc || -n ${library[$a]} ]]; then
            present+=("$a")
        else
            note "$a is not installed: its column shows -"
        fi
    done
}

# ---- running one sample -------------------------------------------------------------------

# run_sample LIBRARY OPTIONS COMMAND...: runs COMMAND with LD_PRELOAD=LIBRARY (none when
# empty) and TALLOC_OPTIONS=OPTIONS (none when empty); sets s_ops, s_seconds, s_checksum,
# s_rss from its result line. Any failure stops the suite.
run_sample() {
    local lib=$1 options=$2 status=0
    shift 2
    timeout 1800 env -u LD_PRELOAD -u TALLOC_OPTIONS ${lib:+"LD_PRELOAD=$lib"} \
        ${options:+"TALLOC_OPTIONS=$options"} "$@" >"$work/stdout" 2>"$work/stderr" || status=$?
    local line
    line=$(grep '^workload=' "$work/stdout" | tail -n 1 || true)
    if ((status != 0)) || [[ -z $line ]]; then
        tail -n 20 "$work/stderr" >&2
        die "${lib:+LD_PRELOAD=$lib }${options:+TALLOC_OPTIONS=$options }$*: exit status $status"
    fi
    s_ops=$(field ops "$line")
    s_seconds=$(field seconds "$line")
    s_checksum=$(field checksum "$line")
    s_rss=$(field rss_kb "$line")
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# The first checksum of a workload is the one every later sample must print.
declare -A expected
check_checksum() { # KEY WHO
    if [[ -z ${expected[$1]:-} ]]; then
        expected[$1]=$s_checksum
    elif [[ ${expected[$1]} != "$s_checksum" ]]; then
        die "checksum mismatch in $1: $2 printed $s_checksum, an earlier run ${expected[$1]}"
    fi
}

# ---- the workloads ------------------------------------------------------------------------

# label, executable, arguments after the scale
workloads=(
    "pair bench_pair" "lifo bench_lifo" "fifo bench_fifo"
    "churn-1k bench_churn 1000" "churn-100k bench_churn 100000" "churn-1M bench_churn 1000000"
    "shortlived bench_shortlived" "pareto bench_pareto" "realloc bench_realloc"
    "large bench_large" "server bench_server" "prodcons bench_prodcons"
    "threadrand bench_threadrand"
)

run_workloads() {
    local csv=$out/workloads.csv n=${#present[@]}
    echo "rep,workload,allocator,ops,seconds,rss_kb,checksum" >"$csv"
    for ((r = 0; r < reps; r++)); do
        for w in "${workloads[@]}"; do
            read -r name exe extra <<<"$w"
            note "repetition $((r + 1))/$reps: $name"
            for ((i = 0; i < n; i++)); do
                local a=${present[(i + r) % n]}
                # shellcheck disable=SC2086 # extra is a word list
                run_sample "${library[$a]}" "${alloc_options[$a]:-}" "$build/bench/$exe" "$scale" $extra
                check_checksum "$name" "$a"
                echo "$((r + 1)),$name,$a,$s_ops,$s_seconds,$s_rss,$s_checksum" >>"$csv"
            done
        done
    done
}

# The scaling benchmark: label, live blocks, extra TALLOC_OPTIONS. The arena columns hold the
# same 140,000 live blocks (about 42 MiB with headers) in arenas of 64 MiB, 416 KiB and 4 KiB.
policies=(segregated first-fit best-fit)
scaling=(
    "1k 1000 -" "10k 10000 -" "100k 100000 -" "1M 1000000 -"
    "1-arena 140000 arena_size=64m" "100-arenas 140000 arena_size=416k"
    "10000-arenas 140000 arena_size=4k"
)
scaling_steps=$(awk -v s="$scale" 'BEGIN { n = int(500000 * s); print n < 1 ? 1 : n }')

run_scaling() {
    local csv=$out/scaling.csv n=${#policies[@]}
    echo "rep,config,policy,live,options,ops,seconds,rss_kb,arenas,checksum" >"$csv"
    for ((r = 0; r < reps; r++)); do
        for c in "${scaling[@]}"; do
            read -r name live extra <<<"$c"
            note "repetition $((r + 1))/$reps: scaling $name"
            for ((i = 0; i < n; i++)); do
                local p=${policies[(i + r) % n]} options
                options=stats=1:policy=$p
                [[ $extra == - ]] || options+=":$extra"
                run_sample "${library[talloc]}" "$options" "$build/bench/bench_scaling" "$live" "$scaling_steps"
                check_checksum "scaling-$name" "$p"
                local arenas
                arenas=$(sed -n 's/^talloc: *arenas \([0-9]*\),.*/\1/p' "$work/stderr" | head -n 1)
                echo "$((r + 1)),$name,$p,$live,$options,$s_ops,$s_seconds,$s_rss,${arenas:-},$s_checksum" >>"$csv"
            done
        done
    done
}

# ---- medians and tables -------------------------------------------------------------------

# stdin: "key value" lines; stdout: "key median" per key.
median_by_key() {
    sort -k1,1 -k2,2g | awk '
        function flush() { if (n) print key, (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }
        $1 != key { flush(); key = $1; n = 0 }
        { v[++n] = $2 }
        END { flush() }'
}

# load_medians ARRAY CSV KEYCOLS VALUECOL: ARRAY[key] = median, the key joining KEYCOLS by ':'.
load_medians() {
    local -n into=$1
    local k v
    while read -r k v; do
        # shellcheck disable=SC2034 # a nameref to the caller's array
        into["$k"]=$v
    done < <(awk -F, -v keys="$3" -v c="$4" 'NR > 1 && $c != "" {
                 n = split(keys, ks, " "); key = $ks[1]
                 for (i = 2; i <= n; i++) key = key ":" $ks[i]
                 print key, $c }' "$2" | median_by_key)
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
ns_per_op() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.1f", s * 1e9 / n }'; }

declare -A w_seconds w_rss w_ops
workload_table() {
    load_medians w_seconds "$out/workloads.csv" "2 3" 5
    load_medians w_rss "$out/workloads.csv" "2 3" 6
    load_medians w_ops "$out/workloads.csv" "2" 4
    local header="| workload | glibc time | glibc peak RSS |" rule="|---|---:|---:|"
    for a in "${peers[@]}"; do
        header+=" ${label[$a]} time / RSS |"
        rule+="---:|"
    done
    echo "$header TAlloc ns/op |"
    echo "$rule---:|"
    for w in "${workloads[@]}"; do
        local name=${w%% *} g=${w_seconds[${w%% *}:glibc]}
        local row
        row="| $name | $(printf '%.3f s' "$g") | $(awk -v k="${w_rss[$name:glibc]}" 'BEGIN { printf "%.1f MiB", k / 1024 }') |"
        for a in "${peers[@]}"; do
            if [[ -n ${w_seconds[$name:$a]:-} ]]; then
                row+=" $(ratio "${w_seconds[$name:$a]}" "$g") / $(ratio "${w_rss[$name:$a]}" "${w_rss[$name:glibc]}") |"
            else
                row+=" - |"
            fi
        done
        echo "$row $(ns_per_op "${w_seconds[$name:talloc]}" "${w_ops[$name]}") |"
    done
}

# TAlloc with every hardening option against TAlloc's defaults, from the same rotation.
hardening_table() {
    echo "| workload | TAlloc time | hardened time | time ratio | TAlloc peak RSS | hardened peak RSS | RSS ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for w in "${workloads[@]}"; do
        local name=${w%% *} t=${w_seconds[${w%% *}:talloc]} h=${w_seconds[${w%% *}:talloc-hardened]}
        printf '| %s | %.3f s | %.3f s | %s | %s | %s | %s |\n' "$name" "$t" "$h" "$(ratio "$h" "$t")" \
            "$(mib "${w_rss[$name:talloc]}")" "$(mib "${w_rss[$name:talloc-hardened]}")" \
            "$(ratio "${w_rss[$name:talloc-hardened]}" "${w_rss[$name:talloc]}")"
    done
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

declare -A c_seconds c_arenas c_ops
scaling_tables() {
    load_medians c_seconds "$out/scaling.csv" "2 3" 7
    load_medians c_arenas "$out/scaling.csv" "2 3" 9
    load_medians c_ops "$out/scaling.csv" "2" 6
    local header="| policy |" rule="|---|" names=()
    for c in "${scaling[@]}"; do
        read -r name live extra <<<"$c"
        names+=("$name")
        header+=" $(scaling_heading "$name" "$live") |"
        rule+="---:|"
    done
    echo "TAlloc ns per step (one free and one malloc):"
    echo
    echo "$header"
    echo "$rule"
    for p in "${policies[@]}"; do
        local row="| $p |"
        for name in "${names[@]}"; do
            row+=" $(ns_per_op "${c_seconds[$name:$p]}" "${c_ops[$name]}") |"
        done
        echo "$row"
    done
    echo
    echo "Arenas in use at the end of those runs (\`stats=1\`):"
    echo
    echo "$header"
    echo "$rule"
    for p in "${policies[@]}"; do
        local row="| $p |"
        for name in "${names[@]}"; do
            row+=" $(printf '%.0f' "${c_arenas[$name:$p]:-0}") |"
        done
        echo "$row"
    done
}
scaling_heading() { # NAME LIVE
    case $1 in
    *-arena*) echo "~${1%%-*} arenas ($(($2 / 1000))k live)" | sed 's/~1 arenas/~1 arena/; s/~10000 /~10,000 /' ;;
    *) echo "$1 live" ;;
    esac
}

# ---- chart and docs -----------------------------------------------------------------------

# docs/performance.png: per workload, a bar per allocator of its time ratio to glibc.
draw_chart() {
    local png=$1 data=$out/ratios.dat others=() a
    for a in "${peers[@]}"; do [[ " ${present[*]} " == *" $a "* ]] && others+=("$a"); done
    command -v gnuplot >/dev/null || return 1
    ((${#others[@]})) || return 1
    {
        printf 'workload'
        for a in "${others[@]}"; do printf ' %s' "${label[$a]}"; done
        echo
        for w in "${workloads[@]}"; do
            local name=${w%% *}
            printf '%s' "$name"
            for a in "${others[@]}"; do printf ' %s' "$(ratio "${w_seconds[$name:$a]}" "${w_seconds[$name:glibc]}")"; done
            echo
        done
    } >"$data"
    local tics="" i=0
    for w in "${workloads[@]}"; do
        tics+="${tics:+, }\"${w%% *}\" $((i++))"
    done
    cat >"$out/chart.gp" <<EOF
set terminal pngcairo size 1100,520 font ",10"
set output '$png'
set title "Wall time relative to glibc (median of $reps; below 1 is faster)"
set logscale y
set ylabel "time / glibc time"
set style fill solid 0.85 border -1
set xtics ($tics) rotate by -35 left nomirror
set grid ytics
set key top left
set xrange [-0.6:${#workloads[@]}-0.4]
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 front
m = ${#others[@]}
w = 0.8 / m
x(j) = column(0) + (j - 2 - (m - 1) / 2.0) * w
plot for [j=2:m+1] '$data' using (x(j)):(1):(x(j) - w / 2):(x(j) + w / 2):(1):(column(j)) \\
     with boxxyerror title columnheader(j)
EOF
    gnuplot "$out/chart.gp"
}

machine() {
    local cpu mem
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "${cpu:-unknown CPU}, $(nproc) cores, $mem memory; $(uname -sr); $(getconf GNU_LIBC_VERSION)"
}

versions() {
    local v list=""
    for pkg in libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4; do
        v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
        [[ -n $v ]] && list+="${list:+, }$pkg $v"
    done
    echo "${list:-none of the Debian packages}"
}

revision() {
    local rev
    rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    # the files this run writes do not make the tree dirty
    [[ -z $(git -C "$root" status --porcelain -- . ':!docs/performance.md' \
        ':!docs/performance.png' 2>/dev/null) ]] || rev+=+dirty
    echo "$rev"
}

write_docs() { # FILE
    local quick_note=""
    ((quick)) && quick_note="
> **This is a \`--quick\` run** (\`--reps $reps\`, \`--scale $scale\`): it tests the script,
> and its numbers are not a measurement. Run \`tools/bench.sh\` for the real tables.
"
    cat >"$1" <<EOF
# Performance

Generated by \`tools/bench.sh\` from the workloads in \`bench/\`; rerun it rather than editing
this file.
$quick_note
Each workload is a small C program on the C library's \`malloc\` family; the allocator under
test is chosen with \`LD_PRELOAD\` (glibc runs with none). A workload times its measured loop
only (\`CLOCK_MONOTONIC\`), and prints its operation count, a checksum of sizes and bytes read
back, which must be equal under every allocator (the script stops otherwise), and its peak
RSS (\`ru_maxrss\`, the whole process, setup included). In every repetition each allocator
runs each workload once, in an order rotated by one per repetition; the tables show the
median of the repetitions. Ratios are allocator / glibc from the same session: below 1 is
faster or smaller. The comment at the top of each \`bench/bench_*.c\` says what it does.

To rerun: \`tools/bench.sh\` (\`--reps N\`, \`--scale X\`, \`--programs\`, \`--out DIR\`,
\`--no-docs\`). This file came from \`$invocation\`.

- Machine: $(machine)
- Allocators: $(versions); TAlloc with its default options
- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(revision)
- Repetitions: $reps; scale $scale
- Load average (1, 5, 15 min): $load_before before, $load_after after

## Workloads

| workload | what it does (\`bench/bench_*.c\`) |
|---|---|
| pair | malloc(32) and free at once, in a loop |
| lifo, fifo | batches of 1000 blocks of 16, 64, 256 or 1024 bytes, freed newest first / oldest first |
| churn-1k, -100k, -1M | 1000, 100,000 or 1,000,000 live blocks; each step frees a random one and allocates 16..512 bytes |
| shortlived | 8..128-byte blocks freed 64 allocations later; every 1000th joins a set of 4096 long-lived ones |
| pareto | Pareto sizes capped at 1 KiB, random lifetimes, under 32768 live |
| realloc | 64 interleaved realloc growth chains (x1.5 + 16..256 bytes) up to 1 KiB..1 MiB |
| large | 5..25 MiB blocks, one write per page, freed at once |
| server | 2 threads: requests allocated by one thread and freed by the other, plus thread-local churn |
| prodcons | 2 threads: one allocates messages of 16..2048 bytes, the other reads and frees them |
| threadrand | 2 threads, each churning its own 10,000 live blocks |

Times are of the measured loop only (filling a live set before it is not included);
\`TAlloc ns/op\` divides TAlloc's median time by the workload's operation count
(malloc/free pairs; realloc calls for realloc).

$(cat "$out/workloads.md")
$( ((chart_ok)) && printf '\n![Wall time of each allocator relative to glibc, per workload](performance.png)\n')

## Hardening

The same samples for TAlloc with every hardening option at once
(\`TALLOC_OPTIONS=$hardened_options\`, "hardened"), which ran in the rotation with the
others, against TAlloc with its defaults; ratios are hardened / defaults.

$(cat "$out/hardening.md")

## Scaling of TAlloc's policies

\`bench_scaling\`: the churn of \`bench_churn\` (free a random live block, allocate 16..512
bytes in its place), $scaling_steps steps, on TAlloc with \`TALLOC_OPTIONS=policy=...\`. The
live columns use the default arena size (16,384,000 bytes). The arena columns hold the same
140,000 live blocks (about 42 MiB with headers) with \`arena_size=64m\`, \`416k\` and \`4k\`,
which spreads them over about 1, 100 and 10,000 arenas; the second table has the counts.

$(cat "$out/scaling.md")
EOF
    if ((programs)); then
        printf '\n## Real programs (tools/bench-programs.sh)\n\n%s\n' "$(cat "$out/programs.md")" >>"$1"
    fi
}

# ---- main -------------------------------------------------------------------------------

install_tools
build_suite
find_allocators
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run_workloads
run_scaling
if ((programs)); then
    "$root/tools/bench-programs.sh" --runs "$reps" "$build" >"$out/programs.md" ||
        die "tools/bench-programs.sh failed"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

workload_table >"$out/workloads.md"
hardening_table >"$out/hardening.md"
scaling_tables >"$out/scaling.md"
{
    cat "$out/workloads.md"
    echo
    cat "$out/hardening.md"
    echo
    cat "$out/scaling.md"
    if ((programs)); then echo; cat "$out/programs.md"; fi
} | tee "$out/tables.md"

if ((docs)); then
    chart_ok=0
    if draw_chart "$root/docs/performance.png"; then chart_ok=1; else note "no chart drawn"; fi
    write_docs "$root/docs/performance.md"
    note "wrote docs/performance.md$( ((chart_ok)) && echo " and docs/performance.png")"
fi
note "samples in $out/workloads.csv and $out/scaling.csv"
