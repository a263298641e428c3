#!/usr/bin/env bash
# test_replay_cli.sh - talloc-replay and the fuzz targets' replay build take bad input cleanly:
# output formats follow the output's name, a NUL in a text file is an error, directories
# are replayed file by file (an empty one is an error), endless or huge inputs are refused,
# write errors are reported, a failure is not hidden by a missing input, a request TAlloc
# cannot represent may fail with no map refused, and libFuzzer flags do not read as files.
# --test-fault N (a test aid of talloc-replay) makes op N crash, so failures can be tested.
# Usage: test_replay_cli.sh path/to/talloc-replay path/to/fuzz_ops (its replay build; - when
# the targets are libFuzzer binaries) CORPUS
set -euo pipefail

usage="usage: test_replay_cli.sh path/to/talloc-replay path/to/fuzz_ops CORPUS_DIR"
replay=${1:?$usage}
fuzz_ops=${2:?$usage}
corpus=${3:?$usage}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# run CMD...: sets rc, out (stdout) and err (stderr)
run() {
    set +e
    "$@" >"$work/out" 2>"$work/err"
    rc=$?
    set -e
    out=$(cat "$work/out")
    err=$(cat "$work/err")
}

printf 'malloc 100\nmalloc 200\nfree #0\n' >"$work/short.txt"
printf 'malloc 100\nmalloc 200\nfree #0\nmalloc 300\nrealloc #0 500\nfree #1\n' >"$work/long.txt"

# (1) output formats follow the output's name
run "$replay" --encode "$work/short.txt" "$work/short.txt.txt"
[[ $rc -eq 2 && $err == *"writes bytes"* && ! -e $work/short.txt.txt ]] \
    || fail "--encode to a .txt name: rc $rc, '$err'"
run "$replay" --encode "$work/short.txt" "$work/short.bin"
[[ $rc -eq 0 && -s $work/short.bin ]] || fail "--encode: rc $rc, '$err'"
run "$replay" --decode "$work/short.bin" "$work/back.bin"
[[ $rc -eq 2 && $err == *"writes text"* ]] || fail "--decode to a byte name: rc $rc, '$err'"
run "$replay" --decode "$work/short.bin" "$work/back.txt"
[[ $rc -eq 0 && $(cat "$work/back.txt") == $(cat "$work/short.txt") ]] \
    || fail "--decode: rc $rc, '$(cat "$work/back.txt")'"
echo "ok: --encode and --decode refuse an output of the other format"

# (2) a NUL in a text file
printf 'malloc 100\n\0malloc 200\n' >"$work/nul.txt"
run "$replay" "$work/nul.txt"
[[ $rc -eq 2 && $err == *"line 2: a NUL byte"* ]] || fail "a NUL in text: rc $rc, '$err'"
cp "$work/short.bin" "$work/bytes.txt" # bytes under a text name
run "$replay" "$work/bytes.txt"
[[ $rc -eq 2 && $err == *"NUL byte"* ]] || fail "bytes named .txt: rc $rc, '$err' '$out'"
echo "ok: a NUL in a .txt file is an error"

# (3) --test-fault and the exit status of a mix
run "$replay" --test-fault 3 "$work/long.txt"
[[ $rc -eq 1 && $out == *"crash: signal"*"during op 3"* ]] || fail "--test-fault 3: rc $rc, '$out'"
run "$replay" --test-fault 3 "$work/short.txt" "$work/long.txt" "$work/missing.txt"
[[ $rc -eq 1 && $out == *"1 passed, 1 failed, 1 not read"* && $err == *"missing.txt"* ]] \
    || fail "pass, fail and missing: rc $rc, '$out' '$err'"
run "$replay" "$work/short.txt" "$work/missing.txt"
[[ $rc -eq 2 && $out == *"1 passed, 0 failed, 1 not read"* ]] || fail "pass and missing: rc $rc, '$out'"
echo "ok: a failure exits 1 even beside an input that could not be read"

# (4) --minimize writes what its output's name says
run "$replay" --test-fault 3 --minimize "$work/long.txt" "$work/min.txt"
[[ $rc -eq 0 && $(grep -cv '^#' "$work/min.txt") -eq 4 ]] \
    || fail "--minimize to .txt: rc $rc, '$(cat "$work/min.txt" 2>/dev/null)' '$err'"
run "$replay" --test-fault 3 "$work/min.txt"
[[ $rc -eq 1 ]] || fail "the minimized text does not fail again: rc $rc, '$out'"
run "$replay" --minimize "$work/long.txt" "$work/min.bin" --test-fault 3
[[ $rc -eq 0 ]] || fail "--minimize to bytes: rc $rc, '$err'"
run "$replay" --print "$work/min.bin"
[[ $out == "$(cat "$work/min.txt")" ]] || fail "bytes and text minimized differently: '$out'"
run "$replay" --minimize "$work/long.txt" "$work/none.txt"
[[ $rc -eq 1 && $err == *"nothing to minimize"* ]] || fail "--minimize of a pass: rc $rc, '$err'"
echo "ok: --minimize writes text to a .txt name and bytes to another"

# (5) directories
run "$replay" "$corpus/fuzz_placement"
n=$(find "$corpus/fuzz_placement" -maxdepth 1 -type f ! -name '*.txt' ! -name '*.md' | wc -l)
[[ $rc -eq 0 && $out == *"$n passed, 0 failed, 0 not read"* ]] || fail "a corpus directory: rc $rc, '$out'"
mkdir "$work/empty"
run "$replay" "$work/empty"
[[ $rc -eq 2 && $err == *"no program files"* ]] || fail "an empty directory: rc $rc, '$err'"
echo "ok: a directory replays its $n files; an empty one is an error"

# (6) endless and huge inputs
run timeout 60 "$replay" /dev/zero
[[ $rc -eq 2 && $err == *"larger than"* ]] || fail "/dev/zero: rc $rc, '$err'"
head -c $((17 << 20)) /dev/zero >"$work/huge"
run "$replay" "$work/huge"
[[ $rc -eq 2 && $err == *"larger than"* ]] || fail "a 17 MiB file: rc $rc, '$err'"
echo "ok: /dev/zero and a 17 MiB input are refused"

# (7) write errors
if [[ -w /dev/full ]]; then
    run bash -c '"$0" --print "$1" >/dev/full' "$replay" "$work/short.txt"
    [[ $rc -eq 2 && $err == *"cannot write standard output"* ]] || fail "--print to /dev/full: rc $rc, '$err'"
    run "$replay" --encode "$work/short.txt" /dev/full
    [[ $rc -eq 2 && $err == *"cannot write /dev/full"* ]] || fail "--encode to /dev/full: rc $rc, '$err'"
    echo "ok: write errors exit 2 with a message"
fi

# (8) a request TAlloc cannot represent fails with no map refused, rightly
printf 'malloc @ptrdiff_max\nmalloc @size_max\nmalloc 16\n' >"$work/huge-request.txt"
run "$replay" --target stress "$work/huge-request.txt"
[[ $rc -eq 0 ]] || fail "malloc(PTRDIFF_MAX) on the stress target: rc $rc, '$out'"
echo "ok: malloc(PTRDIFF_MAX) may fail with no map refused"

# (9) the fuzz targets' replay build: libFuzzer flags, no inputs
[[ $fuzz_ops == - ]] && exit 0
run "$fuzz_ops" -runs=10 -max_len=256 "$corpus/fuzz_ops"
[[ $rc -eq 0 && $err == *"ignoring -runs=10"* && $out == *"inputs replayed"* ]] \
    || fail "fuzz_ops -runs=10 DIR: rc $rc, '$out' '$err'"
run "$fuzz_ops"
[[ $rc -eq 2 && $err == *"no inputs"* ]] || fail "fuzz_ops with no inputs: rc $rc, '$err'"
run "$fuzz_ops" "$work/empty"
[[ $rc -eq 2 && $err == *"no inputs"* ]] || fail "fuzz_ops on an empty directory: rc $rc, '$err'"
run "$fuzz_ops" /dev/zero
[[ $rc -eq 2 && $err == *"larger than"* ]] || fail "fuzz_ops /dev/zero: rc $rc, '$err'"
echo "ok: the replay build ignores libFuzzer flags and needs an input"
