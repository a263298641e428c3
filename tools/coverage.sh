#!/usr/bin/env bash
# Line coverage of allocator/src reached by replaying the checked-in corpus (every target's
# seeds and regressions) through the plain replay binaries, measured with llvm-cov.
# Usage: tools/coverage.sh            prints the per-file report and the uncovered lines
# Output also in build/coverage/coverage.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset coverage >/dev/null
cmake --build --preset coverage
out=build/coverage/profiles
rm -rf "$out" && mkdir -p "$out"
for bin in build/coverage/fuzz/fuzz_*; do
    target=$(basename "$bin")
    dirs=()
    [[ -d corpus/$target ]] && dirs+=("corpus/$target")
    [[ -d corpus/regressions/$target ]] && dirs+=("corpus/regressions/$target")
    ((${#dirs[@]})) || continue
    LLVM_PROFILE_FILE="$out/$target.profraw" "$bin" "${dirs[@]}" >/dev/null
done
llvm-profdata merge -sparse "$out"/*.profraw -o "$out/merged.profdata"
objects=()
for bin in build/coverage/fuzz/fuzz_*; do objects+=(-object "$bin"); done
llvm-cov report "${objects[@]:1}" -instr-profile="$out/merged.profdata" \
    allocator/src | tee build/coverage/coverage.txt
echo
echo "lines never reached:"
llvm-cov show "${objects[@]:1}" -instr-profile="$out/merged.profdata" allocator/src \
    -show-line-counts | grep -E '^/|^ +[0-9]+\| +0\|' | tee -a build/coverage/coverage.txt || true
