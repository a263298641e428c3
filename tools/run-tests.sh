#!/usr/bin/env bash
# The whole test suite: builds every configuration with warnings as errors and runs ctest in
# each. release = gcc -O2, clang = clang -O2, dev = gcc ASan+UBSan, tsan = clang TSan,
# fuzz = the libFuzzer targets (clang, ASan+UBSan) replaying the corpus.
# Usage: tools/run-tests.sh [preset...]   (default: all five)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
presets=("$@")
((${#presets[@]})) || presets=(release clang dev tsan fuzz)
results=()
status=0
for preset in "${presets[@]}"; do
    echo "=== $preset: configure, build, test ==="
    cmake --preset "$preset" -DTALLOC_WERROR=ON >/dev/null
    cmake --build --preset "$preset"
    if ctest --preset "$preset" --parallel 2; then
        results+=("$preset: passed")
    else
        results+=("$preset: FAILED")
        status=1
    fi
done
echo "=== summary ==="
printf '%s\n' "${results[@]}"
exit $status
