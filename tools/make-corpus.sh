#!/usr/bin/env bash
# make-corpus.sh - regenerate every binary seed in corpus/ from its text twin.
#
# Usage: tools/make-corpus.sh [REPLAY] [--check]
#   REPLAY   the talloc-replay binary (default: build/release/tools/talloc-replay; build it
#            first with `cmake --preset release && cmake --build --preset release`)
#   --check  do not write anything: exit 1 when a binary is missing or differs from what its
#            text twin encodes to, or a binary has no text twin
#
# Every corpus/<target>/NAME.txt (and corpus/regressions/<target>/NAME.txt) is encoded with
# `talloc-replay --encode NAME.txt NAME`; the binary twin has the same name without .txt.
# Run from anywhere; paths are relative to the repository root.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
replay="$root/build/release/tools/talloc-replay"
check=0
for arg in "$@"; do
    case "$arg" in
    --check) check=1 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) replay=$arg ;;
    esac
done
if [[ ! -x "$replay" ]]; then
    echo "make-corpus.sh: $replay not found; build the release preset first" >&2
    exit 2
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
status=0
count=0
shopt -s nullglob
for dir in "$root"/corpus/*/ "$root"/corpus/regressions/*/; do
    dir=${dir%/}
    [[ "$(basename "$dir")" == regressions ]] && continue
    for text in "$dir"/*.txt; do
        bin=${text%.txt}
        "$replay" --encode "$text" "$tmp"
        count=$((count + 1))
        if ((check)); then
            if ! cmp -s "$tmp" "$bin"; then
                echo "stale or missing: ${bin#"$root"/}" >&2
                status=1
            fi
        elif ! cmp -s "$tmp" "$bin"; then
            cat "$tmp" >"$bin" # a new file gets the umask's mode, not mktemp's 0600
            echo "wrote ${bin#"$root"/}"
        fi
    done
    for bin in "$dir"/*; do
        case "$bin" in *.txt | *.md) continue ;; esac
        [[ -f "$bin" && ! -f "$bin.txt" ]] || continue
        echo "no text twin: ${bin#"$root"/}" >&2
        status=1
    done
done
echo "make-corpus.sh: $count seeds $( ((check)) && echo checked || echo up to date)"
exit "$status"
