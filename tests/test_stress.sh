#!/usr/bin/env bash
# test_stress.sh - checks talloc-stress end to end: usage and exit codes, determinism of the
# digest, every profile drains the heap, the JSON report and CSV timeline, the system
# allocator mode and the allocators loaded at run time. Usage: test_stress.sh path/to/talloc-stress
set -euo pipefail

stress=${1:?usage: test_stress.sh path/to/talloc-stress}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# (1) usage
"$stress" --help >/dev/null || fail "--help did not exit 0"
set +e
"$stress" --no-such-option >/dev/null 2>&1; rc=$?
"$stress" --threads 0 >/dev/null 2>&1; rc0=$?
set -e
[[ $rc -eq 2 ]] || fail "a bad option exited $rc, not 2"
[[ $rc0 -eq 2 ]] || fail "--threads 0 exited $rc0, not 2"
echo "ok: usage"

# (2) determinism: the digest depends only on the seed
digest() { "$stress" --threads 1 --ops 20000 --seed "$1" --quiet --repro-dir "$work" | grep '^digest: '; }
a=$(digest 42); b=$(digest 42); c=$(digest 43)
[[ -n $a && $a == "$b" ]] || fail "same seed, different digests: '$a' '$b'"
[[ $a != "$c" ]] || fail "seeds 42 and 43 gave the same digest $a"
# every profile in rotation, single thread, is deterministic too
r1=$("$stress" --threads 1 --ops 9000 --seed 5 --check-every 2000 --quiet --repro-dir "$work" \
     --profile all --rotate-every 1000 --max-live 8M | grep '^digest: ')
r2=$("$stress" --threads 1 --ops 9000 --seed 5 --check-every 2000 --quiet --repro-dir "$work" \
     --profile all --rotate-every 1000 --max-live 8M | grep '^digest: ')
[[ $r1 == "$r2" ]] || fail "rotating profiles are not deterministic: '$r1' '$r2'"
echo "ok: determinism ($a, seed 43 $c)"

# (3) every profile: exit 0 and a drained heap
for p in small mixed large realloc aligned calloc phases cross-thread fragment; do
    out=$("$stress" --profile "$p" --threads 2 --duration 3s --quiet --check-every 20000 \
          --repro-dir "$work") || fail "profile $p exited $?: $out"
    grep -q 'heap drained (allocated chunks 0)' <<<"$out" || fail "profile $p: not drained: $out"
    echo "ok: profile $p: $(grep -o 'ops [0-9]* ([0-9]* ops/s)' <<<"$out")"
done

# (4) report and timeline
"$stress" --threads 2 --duration 3s --quiet --seed 9 --report "$work/r.json" \
    --timeline "$work/t.csv" --repro-dir "$work" >/dev/null || fail "report run failed"
python3 -m json.tool "$work/r.json" >/dev/null || fail "invalid JSON report"
head -1 "$work/t.csv" | grep -qx 'elapsed_s,ops,ops_per_s,live_bytes,rss_bytes,arenas' \
    || fail "timeline header: $(head -1 "$work/t.csv")"
[[ $(wc -l <"$work/t.csv") -ge 2 ]] || fail "timeline has no data row"
echo "ok: report and timeline"

# (5) the system allocator
"$stress" --allocator system --threads 2 --duration 2s --quiet --repro-dir "$work" >/dev/null \
    || fail "--allocator system failed"
echo "ok: system allocator"

# (6) jemalloc, mimalloc, tcmalloc, loaded at run time. Whether each is installed is decided
# here from the dynamic linker's cache, not from the driver: installed, the same seed must give
# TAlloc's digest with one thread (the op stream does not depend on the allocator) and a short
# two-thread run over every profile must pass; not installed, the driver must exit 2 with a
# message naming the library and its Debian package. Each prints the branch it took.
ld_cache=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)
is_installed() { grep -q "^[[:space:]]*${1//./\\.} " <<<"$ld_cache"; }
check_loaded_allocator() {
    local name=$1 soname=$2 package=$3 out rc
    set +e
    out=$("$stress" --allocator "$name" --threads 1 --ops 20000 --seed 42 --quiet \
          --repro-dir "$work" 2>&1); rc=$?
    set -e
    if is_installed "$soname"; then
        [[ $rc -eq 0 ]] || fail "--allocator $name ($soname installed) exited $rc: $out"
        grep -q "^summary: ok .*allocator $name\$" <<<"$out" || fail "$name: no ok summary: $out"
        [[ $(grep '^digest: ' <<<"$out") == "$a" ]] \
            || fail "$name: digest differs from TAlloc's $a: $out"
        out=$("$stress" --allocator "$name" --threads 2 --duration 2s --rotate-every 2000 \
              --quiet --repro-dir "$work" 2>&1) || fail "--allocator $name, 2 threads: $out"
        grep -q '^digest: [0-9a-f]\{16\}$' <<<"$out" || fail "$name: no digest line: $out"
        echo "ok: $name installed ($soname): same digest as TAlloc, two-thread run passed"
    else
        [[ $rc -eq 2 ]] || fail "--allocator $name without $soname exited $rc, not 2: $out"
        grep -q "needs $soname from the Debian package $package" <<<"$out" \
            || fail "$name: the message does not name $soname and $package: $out"
        echo "ok: $name not installed ($soname): exit 2 naming the package $package"
    fi
}
check_loaded_allocator jemalloc libjemalloc.so.2 libjemalloc2
check_loaded_allocator mimalloc libmimalloc.so.2 libmimalloc2.0
check_loaded_allocator tcmalloc libtcmalloc.so.4 libgoogle-perftools4
[[ -z $(ls "$work"/stress-* 2>/dev/null) ]] || fail "a passing run wrote a reproducer"
echo "test_stress: all passed"
