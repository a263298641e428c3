#!/usr/bin/env python3
"""Validates the CI configuration against the tree it runs on.

Parses every .github/workflows/*.yml / *.yaml and .clusterfuzzlite/project.yaml, with PyYAML
when it is importable and always with the small YAML-subset parser below (so the check also
works on a machine without PyYAML; where both exist their results must agree). Asserts:

  structure   each workflow has `on` and `jobs`; each job has runs-on and steps; each step
              has exactly one of run / uses; `uses` names a version; `needs` names jobs;
              every ${{ matrix.X }} names a key of that job's matrix; cron lines have 5 fields
  run steps   after expanding the job's matrix: every script path (tools/*.sh, ...) exists
              and is executable; `cmake --preset X`, `cmake --build --preset X`,
              `ctest --preset X`, `cmake --workflow --preset X` name presets of that kind in
              CMakePresets.json; tools/run-tests.sh arguments are presets with configure,
              build and test entries; build/<dir>/ paths are configure presets' binary dirs
  fuzz        every fuzz_* name anywhere in a workflow is a target of
              set(TALLOC_FUZZ_TARGETS ...) in fuzz/CMakeLists.txt, and so is every
              tools/run-main.sh argument
  intent      what each workflow is for (see check_* below): ci.yml tests the four presets
              and smoke-fuzzes with crash upload; nightly.yml fuzzes every target >= 30 min
              from a cached corpus and runs the stress matrix; cflite_*.yml use the
              ClusterFuzzLite actions with language c in code-change / batch / prune mode;
              .clusterfuzzlite/ holds project.yaml (language: c), the Dockerfile and an
              executable build.sh

Usage: validate_workflows.py [SOURCE_DIR]      exit 0 when every check passes
"""

import itertools
import json
import os
import re
import shlex
import sys

# --------------------------------------------------------------------------------------------
# A parser for the YAML subset these files use: block mappings and sequences, plain / single /
# double-quoted scalars, flow sequences of scalars, `|` and `>` block scalars, comments.
# Scalars resolve as PyYAML's YAML 1.1 resolver does (on/off/yes/no/true/false, ints, null).
# Anything else (anchors, aliases, tags, flow mappings, multi-line plain scalars, documents)
# is rejected with its line number: keep the workflows inside this subset.


class YamlError(Exception):
    pass


_BOOL = {
    "yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
    "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
    "on": True, "On": True, "ON": True, "off": False, "Off": False, "OFF": False,
}
_NULL = {"", "~", "null", "Null", "NULL"}
_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)$")
_INT_BASE = re.compile(r"([-+]?)(0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+)$")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)([eE][-+][0-9]+)?$")
# YAML 1.1 oddities PyYAML would turn into numbers, dates or special floats: quote them.
_ODD = re.compile(r"([-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?"
                  r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|<<|=)$")


def _resolve_plain(text, lineno):
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text.replace("_", ""))
    m = _INT_BASE.match(text)
    if m:
        digits = m.group(2).replace("_", "")
        base = 2 if digits.startswith("0b") else 16 if digits.startswith("0x") else 8
        value = int(digits[2:] if base != 8 else digits, base)
        return -value if m.group(1) == "-" else value
    if _FLOAT.match(text):
        return float(text.replace("_", ""))
    if _ODD.match(text):
        raise YamlError(f"line {lineno}: quote {text!r} (YAML 1.1 reads it as a number or date)")
    if text[0] in "&*!%@`|>{" or text.startswith(("- ", "? ", "---", "...")):
        raise YamlError(f"line {lineno}: unsupported plain scalar {text!r}")
    if ": " in text or text.endswith(":") or " #" in text:
        raise YamlError(f"line {lineno}: ambiguous plain scalar {text!r}")
    return text


def _strip_comment(text):
    """Drops a trailing ` # comment` outside quotes."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                if quote == "'" and i + 1 < len(text) and text[i + 1] == "'":
                    continue
                quote = None
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"" and (i == 0 or text[i - 1] in " [,:"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _unquote(text, lineno):
    if text[0] == "'":
        if len(text) < 2 or text[-1] != "'":
            raise YamlError(f"line {lineno}: unterminated quote {text!r}")
        body = text[1:-1]
        if re.search(r"(?<!')'(?!')", body.replace("''", "")):
            raise YamlError(f"line {lineno}: stray quote in {text!r}")
        return body.replace("''", "'")
    if len(text) < 2 or text[-1] != '"':
        raise YamlError(f"line {lineno}: unterminated quote {text!r}")
    try:
        return json.loads(text)
    except ValueError as e:
        raise YamlError(f"line {lineno}: bad double-quoted scalar {text!r}: {e}") from None


def _split_flow(body, lineno):
    items, cur, quote = [], "", None
    for ch in body:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in "[]{}":
            raise YamlError(f"line {lineno}: nested flow collections are not supported")
        elif ch == ",":
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if quote:
        raise YamlError(f"line {lineno}: unterminated quote in flow sequence")
    if cur.strip():
        items.append(cur.strip())
    elif items:
        raise YamlError(f"line {lineno}: empty flow sequence entry")
    return items


def _scalar(text, lineno):
    if not text:
        return None
    if text[0] in "'\"":
        return _unquote(text, lineno)
    if text == "{}":
        return {}
    if text[0] == "[":
        if text[-1] != "]":
            raise YamlError(f"line {lineno}: flow sequence must close on its line")
        return [_scalar(item, lineno) for item in _split_flow(text[1:-1], lineno)]
    return _resolve_plain(text, lineno)


_KEY = re.compile(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^'"\s#\-?:,\[\]{}&*!|>%@`][^#]*?|-[^\s][^#]*?)"""
                  r"""[ \t]*:(?:[ \t]+(.*))?$""")


def _split_key(text, lineno):
    """(key, rest) when `text` is a mapping entry, else None."""
    m = _KEY.match(text)
    if not m:
        return None
    raw, rest = m.group(1), (m.group(2) or "")
    key = _unquote(raw, lineno) if raw[0] in "'\"" else _resolve_plain(raw, lineno)
    return key, rest.strip()


_BLOCK_HEADER = re.compile(r"^[|>]([-+][1-9]?|[1-9][-+]?)?$")


class MiniYaml:
    def __init__(self, text):
        if "\t" in "".join(line[: len(line) - len(line.lstrip())] for line in text.splitlines()):
            raise YamlError("tab in indentation")
        self.raw = text.splitlines()
        # (indent, content, lineno); content None for blank / comment-only lines
        self.lines = []
        for n, line in enumerate(self.raw, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                self.lines.append((None, None, n))
            else:
                if stripped in ("---", "...") or stripped.startswith(("%", "--- ")):
                    raise YamlError(f"line {n}: documents and directives are not supported")
                self.lines.append((len(line) - len(line.lstrip(" ")), stripped, n))
        self.i = 0

    def _skip(self):
        while self.i < len(self.lines) and self.lines[self.i][1] is None:
            self.i += 1

    def _peek(self):
        self._skip()
        return self.lines[self.i] if self.i < len(self.lines) else (None, None, None)

    def parse(self):
        indent, content, n = self._peek()
        if content is None:
            return None
        if indent != 0:
            raise YamlError(f"line {n}: the document must start at column 0")
        value = self._node(0)
        indent, content, n = self._peek()
        if content is not None:
            raise YamlError(f"line {n}: unexpected content (bad indentation?)")
        return value

    def _node(self, indent):
        _, content, n = self._peek()
        if content == "-" or content.startswith("- "):
            return self._seq(indent)
        if _split_key(_strip_comment(content), n) is not None:
            return self._map(indent)
        raise YamlError(f"line {n}: multi-line plain scalars are not supported")

    def _replace_current(self, indent, content):
        _, _, n = self.lines[self.i]
        self.lines[self.i] = (indent, content, n)

    def _seq(self, indent):
        items = []
        while True:
            ind, content, n = self._peek()
            if content is None or ind != indent or not (content == "-" or content.startswith("- ")):
                if content is not None and ind > indent:
                    raise YamlError(f"line {n}: bad indentation in sequence")
                return items
            rest = content[1:].lstrip(" ")
            if not rest or rest.startswith("#"):
                self.i += 1
                ind2, content2, _ = self._peek()
                items.append(self._node(ind2) if content2 is not None and ind2 > indent else None)
                continue
            col = ind + (len(content) - len(rest))
            entry = _strip_comment(rest)
            if _BLOCK_HEADER.match(entry):
                self.i += 1
                items.append(self._block_scalar(indent, entry, n))
            elif entry == "-" or entry.startswith("- ") or _split_key(entry, n) is not None:
                self._replace_current(col, rest)
                items.append(self._node(col))
            else:
                self.i += 1
                items.append(_scalar(entry, n))

    def _map(self, indent):
        result = {}
        while True:
            ind, content, n = self._peek()
            if content is None or ind < indent:
                return result
            if ind > indent:
                raise YamlError(f"line {n}: bad indentation in mapping")
            if content == "-" or content.startswith("- "):
                return result  # a sequence at the parent's indent
            kv = _split_key(_strip_comment(content), n)
            if kv is None:
                raise YamlError(f"line {n}: expected `key: value`, got {content!r}")
            key, rest = kv
            if isinstance(key, (list, dict)):
                raise YamlError(f"line {n}: complex keys are not supported")
            if key in result:
                raise YamlError(f"line {n}: duplicate key {key!r}")
            self.i += 1
            if _BLOCK_HEADER.match(rest):
                result[key] = self._block_scalar(indent, rest, n)
            elif rest:
                result[key] = _scalar(rest, n)
            else:
                ind2, content2, _ = self._peek()
                if content2 is not None and ind2 > indent:
                    result[key] = self._node(ind2)
                elif content2 is not None and ind2 == indent and (
                        content2 == "-" or content2.startswith("- ")):
                    result[key] = self._seq(indent)
                else:
                    result[key] = None

    def _block_scalar(self, parent_indent, header, lineno):
        style, chomp = header[0], ("-" if "-" in header else "+" if "+" in header else "")
        digits = re.findall(r"[1-9]", header)
        body = []
        block_indent = parent_indent + int(digits[0]) if digits else None
        while self.i < len(self.lines):
            raw = self.raw[self.lines[self.i][2] - 1]
            if raw.strip():
                ind = len(raw) - len(raw.lstrip(" "))
                if block_indent is None:
                    if ind <= parent_indent:
                        break
                    block_indent = ind
                if ind < block_indent:
                    break
                body.append(raw[block_indent:])
            else:
                body.append("")
            self.i += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        if not body:
            return ""
        if style == "|":
            text = "\n".join(body)
        else:  # folded: a break between two normal lines is a space, empty lines are breaks
            text, prev, empty = "", None, 0
            for line in body:
                if line == "":
                    empty += 1
                    continue
                more = line[0] in " \t"
                if prev is None:
                    text = "\n" * empty + line
                elif prev == "normal" and not more:
                    text += ("\n" * empty if empty else " ") + line
                else:
                    text += "\n" * (empty + 1) + line
                prev, empty = ("more" if more else "normal"), 0
        if chomp == "-":
            return text
        return text + "\n" * (trailing + 1 if chomp == "+" else 1)


def mini_yaml_load(text):
    return MiniYaml(text).parse()


# --------------------------------------------------------------------------------------------
# The checks.


class Report:
    def __init__(self):
        self.errors = []
        self.checks = 0

    def check(self, ok, where, message):
        self.checks += 1
        if not ok and f"{where}: {message}" not in self.errors:
            self.errors.append(f"{where}: {message}")
        return ok


def load(path, report, rel):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    mini = None
    try:
        mini = mini_yaml_load(text)
        report.check(True, rel, "")
    except YamlError as e:
        report.check(False, rel, f"built-in YAML parser: {e}")
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        return mini
    try:
        full = yaml.safe_load(text)
    except yaml.YAMLError as e:
        report.check(False, rel, f"PyYAML: {e}")
        return mini
    if mini is not None:
        report.check(mini == full, rel,
                     "the built-in YAML parser disagrees with PyYAML (keep the file simple)")
    return full


def fuzz_targets(root):
    with open(os.path.join(root, "fuzz", "CMakeLists.txt"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*set\(TALLOC_FUZZ_TARGETS\s+([^$)]*)\)\s*$", line)
            if m:
                return m.group(1).split()
    return []


def presets(root):
    with open(os.path.join(root, "CMakePresets.json"), encoding="utf-8") as f:
        data = json.load(f)
    kinds = {}
    for kind, field in (("configure", "configurePresets"), ("build", "buildPresets"),
                        ("test", "testPresets"), ("workflow", "workflowPresets")):
        kinds[kind] = {p["name"] for p in data.get(field, []) if not p.get("hidden")}
    return kinds


def strings_in(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str):
                yield k
            yield from strings_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings_in(v)
    elif isinstance(node, str):
        yield node


def triggers(workflow):
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {name: None for name in on}
    return on if isinstance(on, dict) else {}


def matrix_combinations(job):
    """Every matrix combination as a dict (one empty dict without a matrix)."""
    matrix = (job.get("strategy") or {}).get("matrix")
    if not isinstance(matrix, dict):
        return [{}]
    base = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    keys = list(base)
    combos = [dict(zip(keys, values))
              for values in itertools.product(*(v if isinstance(v, list) else [v]
                                                for v in base.values()))] if keys else []
    for ex in matrix.get("exclude") or []:
        combos = [c for c in combos if not all(c.get(k) == v for k, v in ex.items())]
    for inc in matrix.get("include") or []:
        matched = False
        for c in combos:
            if all(c.get(k) == v for k, v in inc.items() if k in keys):
                c.update({k: v for k, v in inc.items() if k not in keys})
                matched = True
        if not matched:
            combos.append(dict(inc))
    return combos or [{}]


def as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expand(text, combo):
    text = re.sub(r"\$\{\{\s*matrix\.([A-Za-z0-9_-]+)\s*\}\}",
                  lambda m: as_text(combo.get(m.group(1), "MATRIX_" + m.group(1))), text)
    return re.sub(r"\$\{\{.*?\}\}", "EXPR", text)


def shell_commands(script):
    """Simple commands of a shell script, each a token list (assignments dropped)."""
    script = script.replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:
            tokens = line.split()
        cur = []
        for tok in tokens + [";"]:
            if tok and set(tok) <= set(";&|()"):
                while cur and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", cur[0]):
                    cur.pop(0)
                if cur:
                    commands.append(cur)
                cur = []
            else:
                cur.append(tok)
    return commands


def option_values(tokens, option):
    values = []
    for k, tok in enumerate(tokens):
        if tok == option and k + 1 < len(tokens):
            values.append(tokens[k + 1])
        elif tok.startswith(option + "="):
            values.append(tok[len(option) + 1:])
    return values


class Context:
    def __init__(self, root):
        self.root = root
        self.targets = fuzz_targets(root)
        self.presets = presets(root)
        self.report = Report()

    def ok(self, cond, where, message):
        return self.report.check(cond, where, message)


def check_run(ctx, where, script, run_steps):
    """Checks one expanded run script; records (where, commands) in run_steps."""
    root, kinds = ctx.root, ctx.presets
    commands = shell_commands(script)
    run_steps.append((where, script, commands))
    for path in sorted(set(re.findall(r"(?<![\w./-])(?:\./)?((?:tools|tests|\.clusterfuzzlite|\.ci)/[\w./-]+\.(?:sh|py))\b", script))):
        full = os.path.join(root, path)
        if ctx.ok(os.path.isfile(full), where, f"{path} does not exist"):
            ctx.ok(os.access(full, os.X_OK) or path.endswith(".py"), where,
                   f"{path} is not executable")
    for path in sorted(set(re.findall(r"(?<![\w./-])build/([\w.-]+)/", script))):
        if path == "EXPR" or path.startswith("MATRIX_"):
            continue
        ctx.ok(path == "fuzz-work" or path in kinds["configure"], where,
               f"build/{path}/ is not the binary dir of a configure preset")
    for tokens in commands:
        prog = os.path.basename(tokens[0])
        args = tokens[1:]
        if prog == "cmake":
            kind = ("build" if "--build" in args else "workflow" if "--workflow" in args
                    else None if any(a in ("-P", "-E", "--install", "--open") for a in args)
                    else "configure")
            for name in option_values(args, "--preset"):
                if kind:
                    ctx.ok(name in kinds[kind], where,
                           f"`cmake` uses {kind} preset {name!r}, not in CMakePresets.json")
        elif prog == "ctest":
            for name in option_values(args, "--preset"):
                ctx.ok(name in kinds["test"], where,
                       f"`ctest` uses test preset {name!r}, not in CMakePresets.json")
        elif tokens[0].endswith("tools/run-tests.sh"):
            for name in args:
                ctx.ok(all(name in kinds[k] for k in ("configure", "build", "test")), where,
                       f"tools/run-tests.sh {name}: needs configure, build and test presets")
        elif tokens[0].endswith("tools/run-main.sh"):
            for name in args:
                ctx.ok(name in ctx.targets, where,
                       f"tools/run-main.sh {name}: not a target in fuzz/CMakeLists.txt")
    for var, value in re.findall(r"\b(TALLOC_FUZZ_SECONDS)=(\S+)", script):
        ctx.ok(value.isdigit() and int(value) > 0, where, f"{var}={value} is not a number")


def check_workflow(ctx, rel, wf):
    """Generic checks; returns {job id: [(where, script, commands)...]} for intent checks."""
    runs = {}
    if not ctx.ok(isinstance(wf, dict), rel, "not a mapping"):
        return runs
    ctx.ok(("on" in wf or True in wf) and bool(triggers(wf)), rel, "no `on` (triggers)")
    for name, spec in triggers(wf).items():
        if name == "schedule":
            ok = isinstance(spec, list) and spec
            ctx.ok(ok, rel, "schedule needs a list of cron entries")
            for entry in spec if ok else []:
                cron = entry.get("cron", "") if isinstance(entry, dict) else ""
                fields = cron.split()
                ctx.ok(len(fields) == 5 and all(re.match(r"^[0-9*/,-]+$", f) for f in fields),
                       rel, f"bad cron {cron!r}")
    jobs = wf.get("jobs")
    if not ctx.ok(isinstance(jobs, dict) and jobs, rel, "no `jobs`"):
        return runs
    for job_id, job in jobs.items():
        where = f"{rel}: job {job_id}"
        if not ctx.ok(isinstance(job, dict), where, "not a mapping"):
            continue
        needs = job.get("needs") or []
        for need in [needs] if isinstance(needs, str) else needs:
            ctx.ok(need in jobs, where, f"needs unknown job {need!r}")
        if "uses" in job:  # a reusable workflow call
            continue
        ctx.ok("runs-on" in job, where, "no runs-on")
        steps = job.get("steps")
        if not ctx.ok(isinstance(steps, list) and steps, where, "no steps"):
            continue
        combos = matrix_combinations(job)
        matrix_keys = set().union(*combos)
        for ref in sorted(set(re.findall(r"\$\{\{\s*matrix\.([A-Za-z0-9_-]+)", json.dumps(job, default=str)))):
            ctx.ok(ref in matrix_keys, where, f"${{{{ matrix.{ref} }}}} is not a matrix key")
        job_runs = runs.setdefault(job_id, [])
        for k, step in enumerate(steps, 1):
            swhere = f"{where} step {k} ({step.get('name', '?') if isinstance(step, dict) else '?'})"
            if not ctx.ok(isinstance(step, dict), swhere, "not a mapping"):
                continue
            ctx.ok(("run" in step) != ("uses" in step), swhere, "needs exactly one of run / uses")
            if "uses" in step:
                uses = str(step["uses"])
                ctx.ok(uses.startswith(("./", "docker://")) or re.match(r"^[\w.-]+/[\w./-]+@[\w.-]+$", uses),
                       swhere, f"uses {uses!r} names no version")
                ctx.ok(step.get("with") is None or isinstance(step["with"], dict), swhere,
                       "`with` is not a mapping")
            if "run" in step:
                if not ctx.ok(isinstance(step["run"], str), swhere, "run is not a string"):
                    continue
                for combo in combos:
                    label = swhere + (f" [{', '.join(f'{a}={as_text(b)}' for a, b in combo.items())}]"
                                      if combo else "")
                    check_run(ctx, label, expand(step["run"], combo), job_runs)
        # every fuzz_* name in the job, matrix values included
        for combo in combos:
            for text in strings_in(job):
                for name in re.findall(r"(?<![A-Za-z0-9_])fuzz_[a-z0-9_]+\b", expand(text, combo)):
                    ctx.ok(name in ctx.targets, where,
                           f"{name} is not a target in fuzz/CMakeLists.txt")
    return runs


# Intent: what each workflow must keep doing. ------------------------------------------------


def step_list(wf, job_id):
    return ((wf.get("jobs") or {}).get(job_id) or {}).get("steps") or []


def uses_steps(wf, prefix):
    for job_id, job in (wf.get("jobs") or {}).items():
        for step in (job or {}).get("steps") or []:
            if isinstance(step, dict) and str(step.get("uses", "")).startswith(prefix):
                yield job_id, job, step


def commands_of(runs, job_id):
    return [(w, tokens) for w, _, cmds in runs.get(job_id, []) for tokens in cmds]


def check_container(ctx, where, job):
    container = job.get("container")
    image = container.get("image") if isinstance(container, dict) else container
    ctx.ok(image == "debian:12", where, f"container should be debian:12, is {image!r}")
    steps = job.get("steps") or []
    first = steps[0].get("run", "") if steps and isinstance(steps[0], dict) else ""
    ctx.ok("apt-get update" in first and "apt-get install" in first and " git" in first,
           where, "the first step should install git (apt-get update && apt-get install -y git)")
    ctx.ok(any("tools/install-deps.sh" in str(s.get("run", "")) for s in steps if isinstance(s, dict)),
           where, "no tools/install-deps.sh step")


def check_ci(ctx, wf, runs):
    rel = ".github/workflows/ci.yml"
    on = triggers(wf)
    ctx.ok("push" in on and "pull_request" in on, rel, "must run on push and pull_request")
    tested = set()
    for job_id, job in (wf.get("jobs") or {}).items():
        check_container(ctx, f"{rel}: job {job_id}", job)
        for _, tokens in commands_of(runs, job_id):
            if tokens[0].endswith("tools/run-tests.sh"):
                tested.update(tokens[1:])
    for preset in ("release", "clang", "dev", "tsan", "fuzz"):
        ctx.ok(preset in tested, rel, f"no job runs tools/run-tests.sh {preset}")
    fuzz_jobs = [j for j in runs if any(t[0].endswith("tools/run-main.sh")
                                        for _, t in commands_of(runs, j))]
    if ctx.ok(fuzz_jobs, rel, "no job runs tools/run-main.sh"):
        job_id = fuzz_jobs[0]
        order = [t[0] + " " + " ".join(t[1:]) for _, t in commands_of(runs, job_id)]
        replay = next((i for i, c in enumerate(order) if "run-tests.sh fuzz" in c), None)
        fuzz = next(i for i, c in enumerate(order) if "run-main.sh" in c)
        ctx.ok(replay is not None and replay < fuzz, rel,
               "the corpus replay (tools/run-tests.sh fuzz) must come before tools/run-main.sh")
        scripts = " ".join(s for _, s, _ in runs[job_id])
        ctx.ok("TALLOC_FUZZ_SECONDS=120 " in scripts, rel, "smoke fuzzing should be 120 s per target")
        uploads = [s for s in step_list(wf, job_id) if isinstance(s, dict)
                   and str(s.get("uses", "")) == "actions/upload-artifact@v4"]
        ctx.ok(any("failure()" in str(s.get("if", "")) and
                   "build/fuzz-work/*/crashes/" in str((s.get("with") or {}).get("path", ""))
                   for s in uploads), rel,
               "the fuzz job must upload build/fuzz-work/*/crashes/** with if: failure()")


def check_nightly(ctx, wf, runs):
    rel = ".github/workflows/nightly.yml"
    on = triggers(wf)
    ctx.ok("schedule" in on and "workflow_dispatch" in on, rel,
           "must run on schedule and workflow_dispatch")
    jobs = wf.get("jobs") or {}
    fuzz_jobs = [j for j in runs if any(t[0].endswith("tools/run-main.sh")
                                        for _, t in commands_of(runs, j))]
    if ctx.ok(fuzz_jobs, rel, "no fuzz job"):
        job_id = fuzz_jobs[0]
        job = jobs[job_id]
        check_container(ctx, f"{rel}: job {job_id}", job)
        fuzzed = {t for _, toks in commands_of(runs, job_id)
                  if toks[0].endswith("tools/run-main.sh") for t in toks[1:]}
        ctx.ok(fuzzed == set(ctx.targets), rel,
               f"the fuzz matrix covers {sorted(fuzzed)}, fuzz/CMakeLists.txt has {sorted(ctx.targets)}")
        budgets = [int(v) for _, s, _ in runs[job_id]
                   for v in re.findall(r"TALLOC_FUZZ_SECONDS=(\d+)", s)]
        ctx.ok(budgets and min(budgets) >= 1800, rel, "each target must fuzz >= 1800 s")
        caches = [s for s in step_list(wf, job_id) if isinstance(s, dict)
                  and str(s.get("uses", "")).startswith("actions/cache")]
        restore = [s for s in caches if str(s["uses"]) in ("actions/cache@v4", "actions/cache/restore@v4")]
        ctx.ok(any("build/fuzz-work/${{ matrix.target }}/corpus" in str((s.get("with") or {}).get("path"))
                   and "matrix.target" in str((s.get("with") or {}).get("key"))
                   and (s.get("with") or {}).get("restore-keys") for s in restore), rel,
               "the fuzz job must restore build/fuzz-work/<target>/corpus from the cache "
               "(key and restore-keys on the target)")
        ctx.ok(any(str(s["uses"]) in ("actions/cache@v4", "actions/cache/save@v4") for s in caches),
               rel, "the fuzz job must save the corpus to the cache")
        ctx.ok(any(str(s.get("uses", "")) == "actions/upload-artifact@v4" and "failure()" in str(s.get("if", ""))
                   for s in step_list(wf, job_id) if isinstance(s, dict)), rel,
               "the fuzz job must upload crashes and logs on failure")
    stress = [j for j, steps in runs.items()
              if any("talloc-stress" in s for _, s, _ in steps)]
    if ctx.ok(stress, rel, "no stress job"):
        job_id = stress[0]
        matrix = ((jobs[job_id].get("strategy") or {}).get("matrix")) or {}
        want = {"preset": {"release", "dev"}, "profile": {"all", "mixed", "phases"},
                "threads": {2, 4}}
        for key, values in want.items():
            ctx.ok(set(matrix.get(key) or []) == values, rel,
                   f"stress matrix {key} should be {sorted(values, key=str)}")
        ctx.ok(len(set(matrix.get("seed") or [])) == 2, rel, "stress matrix needs 2 seeds")
        ctx.ok((matrix.get("duration") or []) == ["2h"], rel, "stress duration should be 2h")
        scripts = " ".join(s for _, s, _ in runs[job_id])
        for option in ("--duration", "--threads", "--seed", "--profile", "--report stress-report.json",
                       "--timeline stress.csv", "--repro-dir repro"):
            ctx.ok(option in scripts, rel, f"talloc-stress is not given {option}")
        ctx.ok("--target talloc-stress" in scripts, rel, "the stress job must build --target talloc-stress")
        uploads = [s for s in step_list(wf, job_id) if isinstance(s, dict)
                   and str(s.get("uses", "")) == "actions/upload-artifact@v4"]
        ctx.ok(any("failure()" in str(s.get("if", "")) and
                   all(p in str((s.get("with") or {}).get("path", ""))
                       for p in ("repro", "stress-report.json", "stress.csv")) for s in uploads),
               rel, "the stress job must upload repro/, stress-report.json, stress.csv on failure")


CFLITE = {"cflite_pr.yml": ("code-change", "pull_request"),
          "cflite_batch.yml": ("batch", "schedule"),
          "cflite_prune.yml": ("prune", "schedule")}
SANITIZERS = {"address", "undefined", "memory", "coverage"}


def check_cflite(ctx, name, wf):
    rel = f".github/workflows/{name}"
    mode, trigger = CFLITE[name]
    ctx.ok(trigger in triggers(wf), rel, f"must run on {trigger}")
    builds = list(uses_steps(wf, "google/clusterfuzzlite/actions/build_fuzzers@"))
    runs = list(uses_steps(wf, "google/clusterfuzzlite/actions/run_fuzzers@"))
    ctx.ok(builds and runs, rel, "needs build_fuzzers and run_fuzzers steps")
    sanitizers = set()
    for job_id, job, step in builds + runs:
        w = step.get("with") or {}
        ctx.ok(str(step["uses"]).endswith("@v1"), rel, f"{step['uses']}: use @v1")
        values = [w.get("sanitizer")]
        if "matrix.sanitizer" in str(values[0]):
            values = ((job.get("strategy") or {}).get("matrix") or {}).get("sanitizer") or []
        for v in values:
            ctx.ok(v in SANITIZERS, rel, f"sanitizer {v!r} unknown")
            sanitizers.add(v)
        if "build_fuzzers" in step["uses"]:
            ctx.ok(w.get("language") == "c", rel, "build_fuzzers: language should be c")
        else:
            ctx.ok(w.get("mode") == mode, rel, f"run_fuzzers: mode should be {mode}")
            ctx.ok(isinstance(w.get("fuzz-seconds"), int) and w["fuzz-seconds"] > 0, rel,
                   "run_fuzzers: fuzz-seconds should be a positive number")
            ctx.ok("github-token" in w, rel, "run_fuzzers: needs github-token")
    ctx.ok("address" in sanitizers, rel, "no address sanitizer build")
    if mode == "batch":
        ctx.ok({"address", "undefined"} <= sanitizers, rel, "batch should run address and undefined")


def check_clusterfuzzlite(ctx):
    root = ctx.root
    rel = ".clusterfuzzlite"
    project = load(os.path.join(root, rel, "project.yaml"), ctx.report, f"{rel}/project.yaml")
    ctx.ok(isinstance(project, dict) and project.get("language") == "c", f"{rel}/project.yaml",
           "language should be c")
    build = os.path.join(root, rel, "build.sh")
    ctx.ok(os.path.isfile(build) and os.access(build, os.X_OK), rel, "build.sh missing or not executable")
    try:
        with open(os.path.join(root, rel, "Dockerfile"), encoding="utf-8") as f:
            docker = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        docker = []
    ctx.ok(docker and re.match(r"^FROM gcr\.io/oss-fuzz-base/base-builder(:\S+)?$", docker[0]),
           f"{rel}/Dockerfile", "must start FROM gcr.io/oss-fuzz-base/base-builder")
    for line in ("COPY . $SRC/talloc", "WORKDIR $SRC/talloc", "COPY .clusterfuzzlite/build.sh $SRC/"):
        ctx.ok(line in docker, f"{rel}/Dockerfile", f"missing `{line}`")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    ctx = Context(root)
    try:
        import yaml  # noqa: F401,PLC0415
        print("YAML: PyYAML and the built-in parser (their results must agree)")
    except ImportError:
        print("YAML: PyYAML not found, the built-in parser alone")
    ctx.ok(ctx.targets, "fuzz/CMakeLists.txt", "no set(TALLOC_FUZZ_TARGETS ...) line")
    print(f"fuzz targets: {' '.join(ctx.targets)}")
    print("presets: " + "; ".join(f"{k}: {' '.join(sorted(v))}" for k, v in ctx.presets.items()))

    wf_dir = os.path.join(root, ".github", "workflows")
    names = sorted(n for n in os.listdir(wf_dir) if n.endswith((".yml", ".yaml"))) \
        if os.path.isdir(wf_dir) else []
    for required in ("ci.yml", "nightly.yml", *CFLITE):
        ctx.ok(required in names, ".github/workflows", f"{required} is missing")
    for name in names:
        rel = f".github/workflows/{name}"
        before_errors, before_checks = len(ctx.report.errors), ctx.report.checks
        wf = load(os.path.join(wf_dir, name), ctx.report, rel)
        if wf is None:
            print(f"FAIL {rel}: could not be parsed")
            continue
        runs = check_workflow(ctx, rel, wf)
        if name == "ci.yml":
            check_ci(ctx, wf, runs)
        elif name == "nightly.yml":
            check_nightly(ctx, wf, runs)
        elif name in CFLITE:
            check_cflite(ctx, name, wf)
        n_runs = sum(len(v) for v in runs.values())
        status = "ok  " if len(ctx.report.errors) == before_errors else "FAIL"
        print(f"{status} {rel}: {len(wf.get('jobs') or {})} jobs, {n_runs} run scripts "
              f"(matrix expanded), {ctx.report.checks - before_checks} checks")
    before = len(ctx.report.errors)
    check_clusterfuzzlite(ctx)
    print(f"{'ok  ' if len(ctx.report.errors) == before else 'FAIL'} .clusterfuzzlite/: "
          "project.yaml, Dockerfile, build.sh")

    print()
    for error in ctx.report.errors:
        print(f"ERROR {error}")
    failed = len(ctx.report.errors)
    print(f"validate_workflows: {len(names)} workflows; "
          f"{ctx.report.checks - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
