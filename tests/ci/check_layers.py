#!/usr/bin/env python3
"""check_layers.py - the allocator's files call only downward.

Reads the layers, top first, from the fenced block after the line "Layers, top first:" in
docs/architecture.md (one group of allocator/src files per line), finds in allocator/src/*.c
every function a file defines for the others (ta_* and TAlloc_*, not static) and every call
to one, and fails on a call from a file to a function of a file in a higher layer, or of a
file the block does not name. Calls through function pointers (the free index's ops, the
hardening hooks, the paths) are not seen: a callback table is the sanctioned way up.

Usage: check_layers.py SOURCE_DIR   (exit 0 ok, 1 an upward call, 2 usage)
"""
import os
import re
import sys


def layers_of(doc):
    lines = open(doc, encoding="utf-8").read().splitlines()
    try:
        start = lines.index("Layers, top first:")
    except ValueError:
        sys.exit(f"{doc}: no line 'Layers, top first:'")
    block, inside = [], False
    for line in lines[start + 1:]:
        if line.startswith("```"):
            if inside:
                break
            inside = True
            continue
        if inside and line.strip():
            block.append(line.split("#")[0].split())
    return {name: level for level, names in enumerate(block) for name in names}


DEFINITION = re.compile(r"^(?!static\b)[A-Za-z_][\w\s\*]*?\b((?:ta|TAlloc)_\w+)\s*\([^;]*$")
CALL = re.compile(r"\b((?:ta|TAlloc)_\w+)\s*\(")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[-1], file=sys.stderr)
        return 2
    root = sys.argv[1]
    level = layers_of(os.path.join(root, "docs", "architecture.md"))
    src = os.path.join(root, "allocator", "src")
    files = sorted(f for f in os.listdir(src) if f.endswith(".c"))
    texts = {f: strip_comments(open(os.path.join(src, f), encoding="utf-8").read()) for f in files}
    owner = {}
    for f, text in texts.items():
        for line in text.splitlines():
            m = DEFINITION.match(line)
            if m:
                owner[m.group(1)] = f
    problems = [f"{f}: not in any layer of docs/architecture.md" for f in files if f not in level]
    for f, text in texts.items():
        for name in sorted(set(CALL.findall(text))):
            target = owner.get(name)
            if target is None or target == f or f not in level or target not in level:
                continue
            if level[target] < level[f]:
                problems.append(f"{f} calls {name} of {target}, a higher layer")
    for p in problems:
        print(f"check_layers: {p}")
    print(f"check_layers: {len(files)} files, {len(owner)} functions, "
          f"{'ok' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
