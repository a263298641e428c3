#!/usr/bin/env bash
# The main job: builds the release configuration and runs talloc-demo, which exercises the
# default heap, prints it with TAlloc_debug_print, and ends with the event counters and the
# invariant check.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target talloc-demo
echo "=== talloc-demo ==="
build/release/tools/talloc-demo
