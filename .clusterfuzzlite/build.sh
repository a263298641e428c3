#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build of TAlloc's libFuzzer targets.
#
# Runs inside gcr.io/oss-fuzz-base/base-builder (or anywhere the OSS-Fuzz variables are set;
# tests/ci/test_oss_fuzz_build.sh runs it on this machine). It uses the environment's
#   CC, CXX, CFLAGS, CXXFLAGS   the compilers and their sanitizer + coverage flags
#                               (CFLAGS carry -fsanitize=... and -fsanitize=fuzzer-no-link)
#   LIB_FUZZING_ENGINE          the engine, added at link time only (-fsanitize=fuzzer)
#   SRC, WORK, OUT              sources ($SRC/talloc), scratch space, where the targets go
#
# CMake is not used on purpose: the project's fuzz build (TALLOC_BUILD_FUZZERS=ON) adds
# -fsanitize=fuzzer and its own sanitizer flags itself, which would fight OSS-Fuzz's. This
# script compiles the same sources with the same per-file treatment as the CMake build:
#   allocator/src/*.c  -std=c11 -fvisibility=hidden -fPIC; under AddressSanitizer also
#                      -fno-sanitize=address -DTALLOC_ASAN_ANNOTATIONS (allocator/CMakeLists.txt,
#                      allocator/src/track.h: the allocator reads the headers it poisons);
#                      check.c without fuzzer coverage (-fno-sanitize=fuzzer-no-link)
#   harness/src/*.c    -std=c11 -D_GNU_SOURCE, no fuzzer coverage (harness/CMakeLists.txt)
#   fuzz/<target>.c    -std=c11 -D_GNU_SOURCE, linked with fuzz/mutator.c (custom mutator)
# and installs, per target: $OUT/<target>, <target>.dict, <target>.options and
# <target>_seed_corpus.zip (the binary seeds of corpus/<target>/ and
# corpus/regressions/<target>/, without their .txt twins).
set -euo pipefail

: "${CC:?CC is not set (OSS-Fuzz sets it)}"
: "${OUT:?OUT is not set}"
: "${WORK:?WORK is not set}"
: "${LIB_FUZZING_ENGINE:?LIB_FUZZING_ENGINE is not set}"
CFLAGS=${CFLAGS:-}
CXX=${CXX:-$CC}
CXXFLAGS=${CXXFLAGS:-$CFLAGS}
AR=${AR:-ar}
FUZZING_ENGINE=${FUZZING_ENGINE:-libfuzzer}

# The source tree: $SRC/talloc in the Docker image (.clusterfuzzlite/Dockerfile), else the
# current directory (the Dockerfile's WORKDIR), or TALLOC_SOURCE_DIR when given.
if [[ -n ${TALLOC_SOURCE_DIR:-} ]]; then
    src=$TALLOC_SOURCE_DIR
elif [[ -n ${SRC:-} && -f $SRC/talloc/allocator/include/talloc.h ]]; then
    src=$SRC/talloc
elif [[ -f allocator/include/talloc.h ]]; then
    src=$PWD
else
    echo "build.sh: cannot find the TAlloc sources (\$SRC/talloc or the current directory)" >&2
    exit 1
fi
cd "$src"

# The target list is the one CMake uses: set(TALLOC_FUZZ_TARGETS ...) in fuzz/CMakeLists.txt.
read -r -a targets <<<"$(sed -n 's/^[[:space:]]*set(TALLOC_FUZZ_TARGETS[[:space:]]\{1,\}\([^$)]*\))[[:space:]]*$/\1/p' fuzz/CMakeLists.txt | head -1)"
if ((${#targets[@]} == 0)); then
    echo "build.sh: no set(TALLOC_FUZZ_TARGETS ...) line in fuzz/CMakeLists.txt" >&2
    exit 1
fi

# Which sanitizer and coverage flags the environment carries.
flags=" $CFLAGS "
asan=0
[[ $flags =~ [[:space:]]-fsanitize=([^[:space:]]*,)?address[,[:space:]] ]] && asan=1
fuzz_cov=0
[[ $flags =~ [[:space:]]-fsanitize=([^[:space:]]*,)?fuzzer-no-link[,[:space:]] ]] && fuzz_cov=1
no_fuzz_cov=()
((fuzz_cov)) && no_fuzz_cov=(-fno-sanitize=fuzzer-no-link)

# CFLAGS is a space-separated string by convention (word splitting intended).
read -r -a cflags <<<"$CFLAGS"
read -r -a cxxflags <<<"$CXXFLAGS"
read -r -a engine <<<"$LIB_FUZZING_ENGINE"
warnings=(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
          -Wformat=2 -Wvla)
includes=(-I"$src/allocator/include" -I"$src/harness/include" -I"$src/fuzz")

obj=$WORK/talloc-build
rm -rf "$obj"
mkdir -p "$obj/allocator" "$obj/harness" "$obj/fuzz"

compile() { # compile OUTPUT SOURCE EXTRA-FLAGS...: $CFLAGS first, so the extras win
    local output=$1 source=$2
    shift 2
    echo "  CC $source"
    "$CC" "${cflags[@]}" -std=c11 -pthread "${warnings[@]}" "${includes[@]}" "$@" \
        -c "$source" -o "$output"
}

echo "=== TAlloc OSS-Fuzz build: ${targets[*]} (asan=$asan, fuzzer coverage=$fuzz_cov) ==="

# The allocator library (allocator/CMakeLists.txt).
alloc_flags=(-fvisibility=hidden -fPIC)
((asan)) && alloc_flags+=(-fno-sanitize=address -DTALLOC_ASAN_ANNOTATIONS)
for source in allocator/src/*.c; do
    name=$(basename "$source" .c)
    extra=()
    [[ $name == check ]] && extra=("${no_fuzz_cov[@]}")
    compile "$obj/allocator/$name.o" "$source" "${alloc_flags[@]}" "${extra[@]}"
done
rm -f "$obj/libtallocator.a"
"$AR" rcs "$obj/libtallocator.a" "$obj"/allocator/*.o

# The harness library (harness/CMakeLists.txt): not coverage-instrumented.
for source in harness/src/*.c; do
    compile "$obj/harness/$(basename "$source" .c).o" "$source" -D_GNU_SOURCE "${no_fuzz_cov[@]}"
done
rm -f "$obj/libtalloc_harness.a"
"$AR" rcs "$obj/libtalloc_harness.a" "$obj"/harness/*.o

# The custom mutator calls LLVMFuzzerMutate, which only libFuzzer provides.
mutator=()
if [[ $FUZZING_ENGINE == libfuzzer ]]; then
    compile "$obj/fuzz/mutator.o" fuzz/mutator.c -D_GNU_SOURCE
    mutator=("$obj/fuzz/mutator.o")
fi

# Zips the binary seeds of corpus/<target>/ and corpus/regressions/<target>/ (flat; the
# regressions get a regression- prefix), leaving out the .txt twins and notes.
seed_zip() {
    local target=$1 zip=$2 stage=$obj/seeds/$1 dir prefix file
    rm -rf "$stage" "$zip"
    mkdir -p "$stage"
    for dir in "corpus/$target" "corpus/regressions/$target"; do
        [[ -d $dir ]] || continue
        prefix=""
        [[ $dir == corpus/regressions/* ]] && prefix=regression-
        while IFS= read -r -d '' file; do
            cp "$file" "$stage/$prefix$(basename "$file")"
        done < <(find "$dir" -maxdepth 1 -type f ! -name '*.txt' ! -name '*.md' ! -name '.*' -print0)
    done
    if [[ -z $(ls -A "$stage") ]]; then
        echo "  (no seeds for $target)"
        return 0
    fi
    if command -v python3 >/dev/null; then
        python3 - "$zip" "$stage" <<'PY'
import os, sys, zipfile
out, stage = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in sorted(os.listdir(stage)):
        z.write(os.path.join(stage, name), name)
PY
    else
        (cd "$stage" && zip -q -X "$zip" ./*)
    fi
    echo "  $(basename "$zip"): $(find "$stage" -type f | wc -l) seeds"
}

for target in "${targets[@]}"; do
    echo "=== $target ==="
    compile "$obj/fuzz/$target.o" "fuzz/$target.c" -D_GNU_SOURCE
    echo "  LD $OUT/$target"
    "$CXX" "${cxxflags[@]}" "$obj/fuzz/$target.o" "${mutator[@]}" \
        "$obj/libtalloc_harness.a" "$obj/libtallocator.a" "${engine[@]}" -pthread \
        -o "$OUT/$target"
    for ext in dict options; do
        if [[ -f fuzz/$target.$ext ]]; then
            cp "fuzz/$target.$ext" "$OUT/$target.$ext"
        fi
    done
    seed_zip "$target" "$OUT/${target}_seed_corpus.zip"
done
echo "=== built ${#targets[@]} targets into $OUT ==="
