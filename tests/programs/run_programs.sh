#!/usr/bin/env bash
# run_programs.sh - real programs on libtallocator-malloc. Each program runs its steps twice in
# the same directory path: once on the C library's malloc, once with LD_PRELOAD=LIB and
# TALLOC_OPTIONS=stats=1. A program passes when, for every step, the exit status, the output
# and the files it wrote are the same on both runs; the step's own process printed TAlloc's
# statistics with more than 100 allocations (so TAlloc served it); every
# statistics block of every process says the program break did not move; and no process
# printed any other "talloc: " line (a misuse report, or a warning about TALLOC_OPTIONS).
#
# Usage: run_programs.sh LIB WORKDIR [PROGRAM...]
#   PROGRAM: python3 perl sort gcc git tar-xz sqlite3 (default: all of them)
# Environment:
#   TALLOC_PROGRAMS_SCALE    multiplies the size of the python3, perl, gcc and sqlite3 work
#                            (default 1)
#   TALLOC_PROGRAMS_TIMING   when set, every step runs under /usr/bin/time and its wall time
#                            and peak RSS are written to WORKDIR/PROGRAM/results/SIDE/STEP.time
#   TALLOC_PROGRAMS_TIMEOUT  seconds one step may take before it counts as hung (default 300)
#   TALLOC_PROGRAMS_OPTIONS  more TALLOC_OPTIONS for the TAlloc side, after stats=1 (e.g.
#                            canary=1:junk=1:guard=1:quarantine=256: no report may appear)
# A program that is missing is installed with apt-get when running as root; otherwise the
# program fails and says which package it needs. Exit status: 0 when every program passed,
# 1 when one failed, 2 on a usage error.
set -euo pipefail

all_programs=(python3 perl sort gcc git tar-xz sqlite3)
min_allocations=100

usage() {
    echo "usage: run_programs.sh LIB WORKDIR [PROGRAM...]" >&2
    echo "programs: ${all_programs[*]}" >&2
    exit 2
}
[[ $# -ge 2 ]] || usage
[[ -f $1 ]] || { echo "run_programs.sh: $1: no such library" >&2; exit 2; }
lib=$(realpath "$1")
mkdir -p "$2"
work=$(realpath "$2")
shift 2
programs=("$@")
[[ ${#programs[@]} -gt 0 ]] || programs=("${all_programs[@]}")
for p in "${programs[@]}"; do
    [[ " ${all_programs[*]} " == *" $p "* ]] || { echo "run_programs.sh: unknown program '$p'" >&2; usage; }
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
workloads=$here/workloads
scale=${TALLOC_PROGRAMS_SCALE:-1}
timing=${TALLOC_PROGRAMS_TIMING:-}
step_timeout=${TALLOC_PROGRAMS_TIMEOUT:-300}
extra_options=${TALLOC_PROGRAMS_OPTIONS:-}
[[ $extra_options =~ ^[a-z0-9_=:,]*$ ]] || { echo "run_programs.sh: TALLOC_PROGRAMS_OPTIONS: only key=value items separated by ':' or ','" >&2; exit 2; }
talloc_options=stats=1${extra_options:+:$extra_options}
[[ $scale =~ ^[1-9][0-9]*$ ]] || { echo "run_programs.sh: TALLOC_PROGRAMS_SCALE must be a positive integer" >&2; exit 2; }

# Everything the programs print must not depend on the machine's settings.
export LC_ALL=C TZ=UTC
unset LD_PRELOAD TALLOC_OPTIONS

# ---- helpers ---------------------------------------------------------------------------------

# have COMMAND: a name on PATH, or an absolute path, that can be run.
have() {
    if [[ $1 == /* ]]; then [[ -x $1 ]]; else command -v "$1" >/dev/null; fi
}

# need COMMAND PACKAGE: COMMAND must exist; as root, a missing one is installed from PACKAGE.
need() {
    local command=$1 package=$2
    have "$command" && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "installing $package for $command"
        local log=$work/apt-$package.log
        local -a apt=(apt-get -y -q -o DPkg::Lock::Timeout=300)
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$package" >"$log" 2>&1 ||
            { "${apt[@]}" update >>"$log" 2>&1 &&
              DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$package" >>"$log" 2>&1; } || true
        have "$command" && return 0
        echo "FAIL: $command is missing and installing the package $package failed (log: $log)" >&2
    else
        echo "FAIL: $command is missing: install the package $package (as root this script installs it)" >&2
    fi
    return 1
}

# Per program: the steps of each side are recorded under $results/SIDE/, and a failure is
# added to $results/problems rather than stopping the program, so one run reports every
# difference.
program='' side='' run='' results=''

problem() {
    echo "  $program: $*" >>"$results/problems"
}

# step [--min N] TAG COMMAND...: runs COMMAND in $run on the current side. The step's process
# writes its pid first (sh -c execs the command, so the command keeps that pid), which is how
# its statistics block is found among those of its children. --min lowers the number of
# allocations the process must make, for a program that works in a few large buffers.
step() {
    local min=$min_allocations
    if [[ $1 == --min ]]; then
        min=$2
        shift 2
    fi
    local tag=$1
    shift
    local out=$results/$side/$tag
    echo "$tag" >>"$results/$side/steps"
    echo "$min" >"$out.min"
    local -a env=(env)
    [[ $side == talloc ]] && env+=(LD_PRELOAD="$lib" TALLOC_OPTIONS="$talloc_options")
    local -a timer=()
    [[ -n $timing ]] && timer=(/usr/bin/time -f '%e %M' -o "$out.time")
    local rc=0
    (cd "$run" && exec timeout -k 10 "$step_timeout" "${timer[@]}" "${env[@]}" \
        sh -c 'echo $$ >"$0" && exec "$@"' "$out.pid" "$@") \
        </dev/null >"$out.out" 2>"$out.err" || rc=$?
    echo "$rc" >"$out.rc"
}

# stderr without TAlloc's statistics blocks: what the program itself printed.
program_stderr() {
    grep -v -e '^talloc: statistics of heap ' -e '^talloc:   ' "$1" || true
}

# The checks of one step: the same on both sides, and TAlloc's statistics as described above.
check_step() {
    local tag=$1
    local g=$results/glibc/$tag t=$results/talloc/$tag
    local grc trc
    grc=$(cat "$g.rc")
    trc=$(cat "$t.rc")
    if [[ $grc -ne 0 ]]; then
        problem "step $tag exits $grc on glibc, so it proves nothing: $(head -c 600 "$g.err")"
        return
    fi
    if [[ $trc -eq 124 || $trc -eq 137 ]]; then
        problem "step $tag did not finish within $step_timeout s on TAlloc (hung?); stderr: $(tail -c 600 "$t.err")"
        return
    fi
    [[ $trc -eq $grc ]] || problem "step $tag exits $trc on TAlloc, $grc on glibc; stderr: $(tail -c 600 "$t.err")"
    if ! cmp -s "$g.out" "$t.out"; then
        problem "step $tag: stdout differs:"$'\n'"$(diff "$g.out" "$t.out" | head -20)"
    fi
    if ! cmp -s <(program_stderr "$g.err") <(program_stderr "$t.err"); then
        problem "step $tag: stderr differs:"$'\n'"$(diff <(program_stderr "$g.err") <(program_stderr "$t.err") | head -20)"
    fi

    local errors
    errors=$(grep -e '^talloc: ' "$t.err" | grep -v -e '^talloc: statistics of heap ' -e '^talloc:   ' || true)
    [[ -z $errors ]] || problem "step $tag: TAlloc reported:"$'\n'"$(head -20 <<<"$errors")"
    local moved
    moved=$(grep -e '^talloc:   program break' "$t.err" | grep -v -e ' (unchanged)$' || true)
    [[ -z $moved ]] || problem "step $tag: the program break moved: $(head -3 <<<"$moved")"
    local breaks blocks
    breaks=$(grep -c -e '^talloc:   program break' "$t.err" || true)
    blocks=$(grep -c -e '^talloc: statistics of heap ' "$t.err" || true)
    [[ $breaks -eq $blocks ]] || problem "step $tag: $blocks statistics blocks but $breaks program break lines"

    local pid allocations
    pid=$(cat "$t.pid" 2>/dev/null || echo none)
    allocations=$(awk -v pid="$pid" '
        $0 ~ "^talloc: statistics of heap .*[(]default heap, pid " pid "[)]$" { mine = 1; next }
        mine && /^talloc:   allocations / { sub(",", "", $3); print $3; exit }
        /^talloc: statistics of heap / { mine = 0 }' "$t.err")
    if [[ -z $allocations ]]; then
        problem "step $tag: no TAlloc statistics for its process (pid $pid): did TAlloc serve it?"
    elif [[ $allocations -le $(cat "$t.min") ]]; then
        problem "step $tag: its process made only $allocations allocations on TAlloc (expected more than $(cat "$t.min"))"
    fi
    local children
    children=$(awk '/^talloc:   allocations / { n++ } END { print (n > 0 ? n - 1 : 0) }' "$t.err")
    echo "  $tag: exit $trc, ${allocations:-no} allocations on TAlloc, $children child processes"
}

# same_files PATH...: files each side's run wrote are byte for byte the same.
same_files() {
    local f
    for f in "$@"; do
        if [[ ! -f $work/$program/glibc/$f ]]; then
            problem "glibc run wrote no $f"
        elif [[ ! -f $work/$program/talloc/$f ]]; then
            problem "TAlloc run wrote no $f"
        elif ! cmp -s "$work/$program/glibc/$f" "$work/$program/talloc/$f"; then
            problem "$f differs: $(cmp "$work/$program/glibc/$f" "$work/$program/talloc/$f" 2>&1 | head -1)"
        fi
    done
}

# run_program NAME STEPS_FUNCTION [FILE...]: both sides of one program, in the same path
# ($work/NAME/run, renamed to glibc/ and talloc/ afterwards), then every check.
run_program() {
    local steps=$2
    shift 2
    local s start
    for s in glibc talloc; do
        side=$s
        mkdir -p "$results/$side" "$run"
        start=$(date +%s%N)
        "$steps"
        echo "$side: $(( ($(date +%s%N) - start) / 1000000 )) ms" >>"$results/wall"
        mv "$run" "$work/$program/$side"
    done
    local tag
    while read -r tag; do
        check_step "$tag"
    done <"$results/glibc/steps"
    cmp -s "$results/glibc/steps" "$results/talloc/steps" || problem "the two sides ran different steps"
    [[ $# -eq 0 ]] || same_files "$@"
}

# A copy of some of this repository's directories, taken once per program so both sides see
# the same files even while the checkout changes.
snapshot() {
    local to=$1
    shift
    mkdir -p "$to"
    local d
    for d in "$@"; do
        cp -R "$repo/$d" "$to/$d"
    done
}

# ---- the programs ----------------------------------------------------------------------------

# python3: the distribution's interpreter (not a version manager's shim on PATH), running
# workloads/python_workload.py: dictionaries, strings, lists, JSON, and a thread pool.
steps_python3() {
    step python /usr/bin/python3 "$workloads/python_workload.py" "$scale"
}
program_python3() {
    need /usr/bin/python3 python3 || return 1
    run_program python3 steps_python3
}

# perl: workloads/perl_workload.pl, hashes, string building and sorting.
steps_perl() {
    step perl perl "$workloads/perl_workload.pl" "$scale"
}
program_perl() {
    need perl perl || return 1
    run_program perl steps_perl
}

# sort: a generated file of more than 50 MiB, made once per WORKDIR (its name carries the
# generator's checksum), sorted three ways with small buffers, so sort merges temporary files,
# in two threads.
sort_input() {
    local sum file base
    sum=$(cksum <"$workloads/sort_input.awk" | cut -d' ' -f1)
    file=$work/input/sort-$sum.txt
    if [[ ! -f $file ]]; then
        mkdir -p "$work/input"
        base=$work/input/sort-base.$$
        awk -f "$workloads/sort_input.awk" >"$base"
        # ten copies, each with its letters rotated by another amount: 50 MiB of distinct lines
        # for the price of generating 5
        local alphabet=abcdefghijklmnopqrstuvwxyz k
        for k in 0 1 2 3 4 5 6 7 8 9; do
            tr a-z "${alphabet:k}${alphabet:0:k}" <"$base"
        done >"$file.$$"
        rm -f "$base"
        mv "$file.$$" "$file"
    fi
    local size
    size=$(stat -c %s "$file")
    [[ $size -ge $((50 * 1024 * 1024)) ]] || { echo "FAIL: sort input $file has only $size bytes" >&2; return 1; }
    echo "$file"
}
steps_sort() {
    mkdir -p "$run/tmp"
    step lines sort --parallel=2 -S 4M -T tmp -o sorted-lines.txt "$sort_file"
    step keys sort --parallel=2 -S 16M -T tmp -t ' ' -k2,2n -k1,1 -o sorted-keys.txt "$sort_file"
    step unique sort --parallel=2 -S 8M -T tmp -u -t ' ' -k3,3 -o unique.txt "$sort_file"
}
program_sort() {
    need sort coreutils || return 1
    need tr coreutils || return 1
    sort_file=$(sort_input) || return 1
    run_program sort steps_sort sorted-lines.txt sorted-keys.txt unique.txt
}

# gcc: the allocator's sources of a snapshot in one driver run (one compiler process per
# file), and a generated C file of workloads/c_source.awk; the objects must be identical.
steps_gcc() {
    local sources=$work/gcc/source/allocator
    step sources gcc -std=c11 -O2 -Wall -Wextra -fPIC -I"$sources/include" -c "$sources"/src/*.c
    step generated gcc -O2 -Wall -c "$work/gcc/source/generated.c" -o generated.o
}
program_gcc() {
    need gcc gcc || return 1
    snapshot "$work/gcc/source" allocator
    awk -v functions=$((40 * scale)) -f "$workloads/c_source.awk" >"$work/gcc/source/generated.c"
    local objects=(generated.o) f
    for f in "$work/gcc/source/allocator/src/"*.c; do
        f=${f##*/}
        objects+=("${f%.c}.o")
    done
    run_program gcc steps_gcc "${objects[@]}"
}

# git: a repository of a snapshot of allocator/ and harness/ with three commits, repacked with
# two threads, then read back. Names and dates are fixed, so every object id is too.
steps_git() {
    cp -R "$work/git/source/." "$run/"
    step init git init -q -b main
    step add git add .
    step commit1 git commit -q -m "first"
    find "$run" -name '*.c' -path '*src*' -exec sed -i 's/return /return  /' {} +
    step commit2 git commit -q -a -m "second: spacing"
    sed -i '1d' "$run"/harness/include/*.h "$run"/allocator/src/*.h
    GIT_AUTHOR_DATE='2024-01-03T00:00:00Z' step commit3 git commit -q -a -m "third: headers"
    step repack git -c pack.threads=2 repack -a -d -f -q --window=50
    step fsck git fsck --full --strict
    step log git log --stat -p
    step objects git cat-file --batch-all-objects --batch-check
    step tree git ls-tree -r -l HEAD
    step blame git blame -s allocator/src/internal.h
}
program_git() {
    need git git || return 1
    snapshot "$work/git/source" allocator harness
    mkdir -p "$work/git/home"
    HOME=$work/git/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
        GIT_AUTHOR_NAME="TAlloc Test" GIT_AUTHOR_EMAIL=test@talloc.invalid \
        GIT_COMMITTER_NAME="TAlloc Test" GIT_COMMITTER_EMAIL=test@talloc.invalid \
        GIT_AUTHOR_DATE='2024-01-02T00:00:00Z' GIT_COMMITTER_DATE='2024-01-02T00:00:00Z' \
        run_program git steps_git
}

# tar-xz: an archive of a snapshot with fixed order, times and owners, compressed by xz in two
# threads (fixed block size, so the output is too); archive, compressed file and the listing
# must be identical.
tar_flags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)
steps_tar_xz() {
    step create tar "${tar_flags[@]}" -cf tree.tar -C "$work/tar-xz/source" .
    # xz works in a few large buffers: tens of allocations, not hundreds
    step --min 20 compress xz -T2 --block-size=262144 -6 -k tree.tar
    step list tar -tvJf tree.tar.xz
    step --min 10 test xz -t -v tree.tar.xz
    mkdir "$run/out"
    step extract tar -xJf tree.tar.xz -C out
}
program_tar_xz() {
    need tar tar || return 1
    need xz xz-utils || return 1
    snapshot "$work/tar-xz/source" allocator harness stress fuzz tests tools docs
    run_program tar-xz steps_tar_xz tree.tar tree.tar.xz
    diff -r "$work/tar-xz/source" "$work/tar-xz/talloc/out" >/dev/null ||
        problem "the tree extracted on TAlloc differs from the source"
}

# sqlite3: a generated script (workloads/sqlite_script.awk) into a database file: inserts in a
# transaction, indexes, updates, deletes, ordered queries, VACUUM and an integrity check.
steps_sqlite3() {
    step script sqlite3 data.db ".read $work/sqlite3/script.sql"
    step dump sqlite3 data.db .dump
}
program_sqlite3() {
    need sqlite3 sqlite3 || return 1
    mkdir -p "$work/sqlite3"
    awk -v rows=$((20000 * scale)) -f "$workloads/sqlite_script.awk" >"$work/sqlite3/script.sql"
    run_program sqlite3 steps_sqlite3 data.db
}

# ---- main ------------------------------------------------------------------------------------

status=0
for program in "${programs[@]}"; do
    echo "== $program"
    rm -rf "${work:?}/$program"
    run=$work/$program/run
    results=$work/$program/results
    mkdir -p "$results"
    # in a subshell of its own, where set -e holds: a command of the program's own setup that
    # fails stops that program only
    set +e
    (
        set -e
        "program_${program//-/_}"
    )
    rc=$?
    set -e
    [[ $rc -eq 0 ]] || problem "stopped with status $rc before its checks were done"
    [[ -f $results/wall ]] && sed 's/^/  wall time on /' "$results/wall"
    if [[ -s $results/problems ]]; then
        echo "FAIL: $program"
        cat "$results/problems"
        status=1
    else
        # what each side wrote can be large (the sort outputs); a passing program keeps only
        # its results/
        rm -rf "${work:?}/$program/glibc" "${work:?}/$program/talloc"
        echo "ok: $program"
    fi
done
exit $status
