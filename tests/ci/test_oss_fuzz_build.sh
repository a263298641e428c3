#!/usr/bin/env bash
# Runs .clusterfuzzlite/build.sh the way OSS-Fuzz / ClusterFuzzLite does, on this machine:
# the source tree copied to $SRC/talloc, build.sh copied to $SRC/build.sh (as the Dockerfile
# does), run from $SRC/talloc with OSS-Fuzz's variables for libFuzzer. Then checks that every
# target of set(TALLOC_FUZZ_TARGETS ...) in fuzz/CMakeLists.txt landed in $OUT as an
# executable with its .dict, .options and _seed_corpus.zip (exactly the binary seeds of
# corpus/<target>/ and corpus/regressions/<target>/), that its options name its dictionary,
# and that `$OUT/<target> -runs=0 <options> <unzipped seeds>` exits 0 having read every seed
# with the custom mutator linked.
#
# Two builds: SANITIZER=address (CFLAGS exactly as OSS-Fuzz sets them for libFuzzer+ASan) and
# SANITIZER=undefined (the batch workflow's second sanitizer). TALLOC_OSS_FUZZ_SANITIZERS
# picks a subset ("address"). Differences from the real base-builder image: clang is this
# machine's (not OSS-Fuzz's), and CXXFLAGS lack -stdlib=libc++ (libc++ is not installed).
#
# Usage: tests/ci/test_oss_fuzz_build.sh [SOURCE_DIR]     exit 0 pass, 1 fail, 77 skipped
set -euo pipefail

source_dir=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
read -r -a sanitizers <<<"${TALLOC_OSS_FUZZ_SANITIZERS:-address undefined}"

# OSS-Fuzz's flags (infra/base-images: base-clang CFLAGS, base-builder SANITIZER_FLAGS_*,
# compile's libFuzzer coverage flags).
common_cflags="-O1 -fno-omit-frame-pointer -gline-tables-only -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"
san_address="-fsanitize=address -fsanitize-address-use-after-scope"
ubsan_checks="array-bounds,bool,builtin,enum,float-divide-by-zero,function,integer-divide-by-zero,null,object-size,return,returns-nonnull-attribute,shift,signed-integer-overflow,unreachable,vla-bound,vptr"
san_undefined="-fsanitize=${ubsan_checks},unsigned-integer-overflow -fno-sanitize-recover=${ubsan_checks}"
coverage_libfuzzer="-fsanitize=fuzzer-no-link"
# ClusterFuzz's runtime options (base-runner): unsigned overflow is reported by the
# undefined build but silenced when run.
export ASAN_OPTIONS="alloc_dealloc_mismatch=0:allocator_may_return_null=1:detect_leaks=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:print_summary=1:silence_unsigned_overflow=1:halt_on_error=1"

for tool in clang clang++ python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "oss_fuzz_build: SKIPPED ($tool not found)"
        exit 77
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/talloc-oss-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The toolchain must link libFuzzer with ASan at all; otherwise there is nothing to test.
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return (int)(d && n) & 0; }' \
    >"$tmp/probe.c"
if ! clang -fsanitize=fuzzer,address "$tmp/probe.c" -o "$tmp/probe" 2>"$tmp/probe.log"; then
    cat "$tmp/probe.log"
    echo "oss_fuzz_build: SKIPPED (clang cannot link -fsanitize=fuzzer,address)"
    exit 77
fi

mapfile -t targets < <(sed -n 's/^[[:space:]]*set(TALLOC_FUZZ_TARGETS[[:space:]]\{1,\}\([^$)]*\))[[:space:]]*$/\1/p' \
    "$source_dir/fuzz/CMakeLists.txt" | head -1 | tr -s ' \t' '\n' | sed '/^$/d')
if ((${#targets[@]} == 0)); then
    echo "oss_fuzz_build: FAIL: no set(TALLOC_FUZZ_TARGETS ...) line in fuzz/CMakeLists.txt"
    exit 1
fi
echo "targets (fuzz/CMakeLists.txt): ${targets[*]}"

# $SRC/talloc: a copy of the tree as the Dockerfile's `COPY . $SRC/talloc` makes it, without
# build output and git metadata.
src=$tmp/src
mkdir -p "$src/talloc"
tar -C "$source_dir" --exclude=./build --exclude=./.git -cf - . | tar -C "$src/talloc" -xf -
cp "$src/talloc/.clusterfuzzlite/build.sh" "$src/build.sh"
snapshot() { (cd "$src/talloc" && find . -printf '%p %s %T@\n' | sort); }
snapshot >"$tmp/tree.before"

passed=0
failed=0
results=()
pass() { passed=$((passed + 1)); results+=("PASS $*"); echo "  PASS $*"; }
fail() { failed=$((failed + 1)); results+=("FAIL $*"); echo "  FAIL $*"; }

# Checks one target's zip against the corpus and unpacks it: prints the seed count.
check_zip() { # check_zip ZIP TARGET DEST
    python3 - "$1" "$source_dir/corpus" "$2" "$3" <<'PY'
import os, sys, zipfile
zip_path, corpus, target, dest = sys.argv[1:5]
expected = {}
for sub, prefix in ((target, ""), (os.path.join("regressions", target), "regression-")):
    d = os.path.join(corpus, sub)
    if not os.path.isdir(d):
        continue
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isfile(p) and not name.endswith((".txt", ".md")) and not name.startswith("."):
            with open(p, "rb") as f:
                expected[prefix + name] = f.read()
with zipfile.ZipFile(zip_path) as z:
    bad = z.testzip()
    if bad:
        sys.exit(f"corrupt member {bad}")
    got = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    z.extractall(dest)
missing = sorted(set(expected) - set(got))
extra = sorted(set(got) - set(expected))
differ = sorted(n for n in set(got) & set(expected) if got[n] != expected[n])
if missing or extra or differ or not got:
    sys.exit(f"seed zip mismatch: missing={missing} extra={extra} differ={differ} count={len(got)}")
print(len(got))
PY
}

# libFuzzer flags from OUT/<target>.options, with dict= resolved next to the binary as
# ClusterFuzz does.
options_flags() { # options_flags OPTIONS OUT
    python3 - "$1" "$2" <<'PY'
import configparser, os, sys
cp = configparser.ConfigParser()
cp.read(sys.argv[1])
if not cp.has_section("libfuzzer"):
    sys.exit("no [libfuzzer] section")
for key, value in cp.items("libfuzzer"):
    if key == "dict":
        value = os.path.join(sys.argv[2], value)
        if not os.path.isfile(value):
            sys.exit(f"dict {value} does not exist")
    print(f"-{key}={value}")
PY
}

for sanitizer in "${sanitizers[@]}"; do
    case $sanitizer in
    address) san_flags=$san_address ;;
    undefined) san_flags=$san_undefined ;;
    *) echo "oss_fuzz_build: unknown sanitizer $sanitizer"; exit 1 ;;
    esac
    cflags="$common_cflags $san_flags $coverage_libfuzzer"
    out=$tmp/out-$sanitizer
    work=$tmp/work-$sanitizer
    mkdir -p "$out" "$work"
    echo "=== SANITIZER=$sanitizer: build.sh ==="
    echo "CFLAGS=$cflags"
    start=$SECONDS
    if (cd "$src/talloc" &&
        env -u TALLOC_SOURCE_DIR -u AR CC=clang CXX=clang++ CFLAGS="$cflags" CXXFLAGS="$cflags" \
            LIB_FUZZING_ENGINE=-fsanitize=fuzzer SANITIZER="$sanitizer" FUZZING_ENGINE=libfuzzer \
            FUZZING_LANGUAGE=c ARCHITECTURE=x86_64 SRC="$src" OUT="$out" WORK="$work" \
            bash -eu "$src/build.sh") >"$tmp/build-$sanitizer.log" 2>&1; then
        pass "$sanitizer build.sh ($((SECONDS - start)) s)"
    else
        cat "$tmp/build-$sanitizer.log"
        fail "$sanitizer build.sh exited non-zero"
        continue
    fi
    if grep -n 'warning:' "$tmp/build-$sanitizer.log"; then
        echo "  (compiler warnings above; not an error)"
    fi

    for target in "${targets[@]}"; do
        bin=$out/$target
        what="$sanitizer $target"
        problems=()
        [[ -f $bin && -x $bin ]] || problems+=("no executable")
        [[ -s $out/$target.dict ]] || problems+=("no .dict")
        [[ -s $out/$target.options ]] || problems+=("no .options")
        [[ -s $out/${target}_seed_corpus.zip ]] || problems+=("no _seed_corpus.zip")
        if ((${#problems[@]})); then
            fail "$what: ${problems[*]}"
            continue
        fi
        seeds=$tmp/seeds-$sanitizer/$target
        mkdir -p "$seeds"
        if ! count=$(check_zip "$out/${target}_seed_corpus.zip" "$target" "$seeds" 2>&1); then
            fail "$what: $count"
            continue
        fi
        if ! opts_text=$(options_flags "$out/$target.options" "$out" 2>&1); then
            fail "$what: .options: $opts_text"
            continue
        fi
        mapfile -t opts <<<"$opts_text"
        log=$tmp/run-$sanitizer-$target.log
        if ! (cd "$out" && "$bin" -runs=0 "${opts[@]}" "$seeds") >"$log" 2>&1; then
            tail -30 "$log"
            fail "$what: -runs=0 on the seed corpus exited non-zero"
            continue
        fi
        found=$(sed -n 's/^INFO: *\([0-9]*\) files found in .*/\1/p' "$log" | head -1)
        if [[ $found != "$count" ]]; then
            cat "$log"
            fail "$what: libFuzzer read ${found:-no} files, the zip has $count"
            continue
        fi
        if ! grep -q 'found LLVMFuzzerCustomMutator' "$log"; then
            cat "$log"
            fail "$what: the custom mutator (fuzz/mutator.c) is not linked"
            continue
        fi
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        pass "$what: executable, .dict, .options (${#opts[@]} flags), $count seeds, -runs=0 ok (${cov:-cov: ?})"
    done
done

snapshot >"$tmp/tree.after"
if diff "$tmp/tree.before" "$tmp/tree.after" >"$tmp/tree.diff"; then
    pass "build.sh left \$SRC/talloc untouched"
else
    head -20 "$tmp/tree.diff"
    fail "build.sh wrote into \$SRC/talloc (output belongs in \$WORK and \$OUT)"
fi

echo
echo "=== oss_fuzz_build summary ==="
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
