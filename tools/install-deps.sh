#!/usr/bin/env bash
# Installs what the build needs beyond a Debian 12 base image, and only what is missing:
# cmake, ninja, gcc, clang (with its sanitizer and libFuzzer runtimes).
#
# Optional: `tools/install-deps.sh --bench-allocators` (or TALLOC_BENCH_ALLOCATORS=1) also
# installs jemalloc, mimalloc and tcmalloc, which `talloc-stress --allocator` loads at run time
# for comparisons (tools/stress-compare.sh). Neither the build nor the tests need them.
set -euo pipefail
bench_allocators=${TALLOC_BENCH_ALLOCATORS:-0}
for arg in "$@"; do
    case $arg in
    --bench-allocators) bench_allocators=1 ;;
    *) echo "usage: install-deps.sh [--bench-allocators]" >&2; exit 2 ;;
    esac
done
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
command -v gcc >/dev/null || missing+=(gcc)
command -v clang >/dev/null || missing+=(clang)
if ! echo 'int main(void){return 0;}' |
        clang -fsanitize=thread -x c - -o /dev/null 2>/dev/null; then
    missing+=(clang libclang-rt-dev)
fi
if [[ $bench_allocators == 1 ]]; then
    # Debian 12 package : the library talloc-stress opens
    libraries=$(ldconfig -p 2>/dev/null || true)
    for pair in libjemalloc2:libjemalloc.so.2 libmimalloc2.0:libmimalloc.so.2 \
                libgoogle-perftools4:libtcmalloc.so.4 \
                libtcmalloc-minimal4:libtcmalloc_minimal.so.4; do
        grep -qF "${pair#*:} " <<<"$libraries" || missing+=("${pair%%:*}")
    done
fi
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
