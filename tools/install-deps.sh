#!/usr/bin/env bash
# Installs what the build needs beyond a Debian 12 base image, and only what is missing:
# cmake, ninja, gcc, clang (with its sanitizer and libFuzzer runtimes).
set -euo pipefail
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
command -v gcc >/dev/null || missing+=(gcc)
command -v clang >/dev/null || missing+=(clang)
if ! echo 'int main(void){return 0;}' |
        clang -fsanitize=thread -x c - -o /dev/null 2>/dev/null; then
    missing+=(clang libclang-rt-dev)
fi
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
