#!/bin/sh
# valgrind_visibility.sh VALGRIND PROGRAM - Valgrind memcheck sees inside TAlloc's arenas
# (allocator/src/track.h). PROGRAM is test_sanitizer_visibility; each of its scenarios runs
# under memcheck, which must report exactly the misuse and nothing the allocator does itself:
#   clean             every annotated path used correctly: 0 errors, no leak
#   write-after-free  "Invalid write of size 1" ... "inside a block of size 13 free'd"
#   write-past-end    "Invalid write of size 1" ... "0 bytes after a block of size 13 alloc'd"
#   read-header       "Invalid read of size 1" ... "16 bytes before a block of size 13 alloc'd"
#   leak              a lost TAlloc block is "definitely lost"
#   uninitialised     a branch on bytes malloc returned unwritten is reported
# Registered with ctest only in unsanitized builds with TALLOC_VALGRIND (tests/CMakeLists.txt).
# Exits 77 (ctest: skipped) when this valgrind cannot run the program at all, e.g. valgrind
# 3.19 and the DWARF 5 debug info of a clang -g build.
set -u
valgrind=$1
program=$2
failures=0

out=$("$valgrind" "$program" clean 2>&1)
case $out in
*"Valgrind: debuginfo reader"* | *"can't recover"*)
    echo "$out" | tail -8
    echo "valgrind_visibility: skipped, valgrind cannot read this build's debug info"
    exit 77 ;;
esac

# expect SCENARIO EXIT_STATUS PHRASE... ; a phrase starting with "!" must not appear.
expect() {
    scenario=$1
    want=$2
    shift 2
    out=$("$valgrind" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
          "$program" "$scenario" 2>&1)
    status=$?
    ok=1
    [ "$status" -eq "$want" ] || ok=0
    for phrase in "$@"; do
        case $phrase in
        !*) case $out in *"${phrase#!}"*) ok=0 ;; esac ;;
        *) case $out in *"$phrase"*) ;; *) ok=0 ;; esac ;;
        esac
    done
    if [ "$ok" -eq 1 ]; then
        echo "ok   $scenario"
    else
        failures=$((failures + 1))
        echo "FAIL $scenario: want exit status $want (got $status) and:"
        for phrase in "$@"; do echo "       $phrase"; done
        echo "$out" | sed 's/^/    | /'
    fi
}

expect clean 0 "ERROR SUMMARY: 0 errors from 0 contexts" "!definitely lost" "!Invalid"
expect write-after-free 99 "Invalid write of size 1" "0 bytes inside a block of size 13 free'd" \
    "ERROR SUMMARY: 1 errors from 1 contexts"
expect write-past-end 99 "Invalid write of size 1" "0 bytes after a block of size 13 alloc'd" \
    "ERROR SUMMARY: 1 errors from 1 contexts"
expect read-header 99 "Invalid read of size 1" "16 bytes before a block of size 13 alloc'd" \
    "ERROR SUMMARY: 1 errors from 1 contexts"
expect leak 99 "40 bytes in 1 blocks are definitely lost" "ERROR SUMMARY: 1 errors from 1 contexts"
expect uninitialised 99 "Conditional jump or move depends on uninitialised value" \
    "ERROR SUMMARY: 1 errors from 1 contexts"

if [ "$failures" -ne 0 ]; then
    echo "valgrind_visibility: $failures scenario(s) failed"
    exit 1
fi
echo "valgrind_visibility: all scenarios passed"
