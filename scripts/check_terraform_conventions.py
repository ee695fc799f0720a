#!/usr/bin/env python3
"""Checks the conventions of terraform/ that no other tool checks.

- every module (terraform/, terraform/modules/*, terraform/examples/*) has main.tf, variables.tf,
  outputs.tf, versions.tf and README.md; every module but the examples has tests/*.tftest.hcl
  using `mock_provider "aws"`;
- modules and the root take `create`, `name` and `tags` first, in that order;
- every variable has a type (never `any`) and a description; every output a description;
  `name` has a validation block;
- versions.tf requires Terraform >= 1.7 and the AWS provider >= 6;
- every `#checkov:skip=` names a check and gives a reason;
- each module README names every input and output of the module;
- every `*.tftest.hcl` refers only to variables, outputs, resources, data sources and module
  outputs that exist (Terraform itself cannot run here, so this catches stale tests);
- `=` of consecutive one-line attributes is aligned the way `terraform fmt` aligns it (hclwrite:
  a run of single-line assignments shares one column; any other line ends the run).

Usage: check_terraform_conventions.py [TERRAFORM_DIR]   (default: terraform/ of this repository)
Exit status: 0 clean, 1 problems found, 2 usage or parse problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover
    print("check_terraform_conventions: python-hcl2 is not installed", file=sys.stderr)
    sys.exit(2)

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
SKIP_RE = re.compile(r"#\s*checkov:skip=(\S*)")
SKIP_OK_RE = re.compile(r"#\s*checkov:skip=CKV2?_[A-Z0-9]+_\d+:\s*\S.{9,}")


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def parse(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle)


def blocks(parsed: dict, kind: str) -> list[tuple[str, dict]]:
    out = []
    for block in parsed.get(kind, []):
        for key, value in block.items():
            out.append((unquote(key), value))
    return out


def check_module(directory: Path, is_example: bool) -> list[str]:
    problems = []
    rel = directory  # for messages
    for name in REQUIRED_FILES:
        if not (directory / name).is_file():
            problems.append(f"{rel}: missing {name}")
    if not is_example:
        tests = sorted((directory / "tests").glob("*.tftest.hcl"))
        if not tests:
            problems.append(f"{rel}: no tests/*.tftest.hcl")
        for test in tests:
            if 'mock_provider "aws"' not in test.read_text(encoding="utf-8"):
                problems.append(f"{test}: does not use mock_provider \"aws\"")

    variables: list[tuple[str, dict]] = []
    outputs: list[tuple[str, dict]] = []
    for tf in sorted(directory.glob("*.tf")):
        parsed = parse(tf)
        if tf.name == "variables.tf":
            variables = blocks(parsed, "variable")
        elif blocks(parsed, "variable"):
            problems.append(f"{tf}: variables belong in variables.tf")
        if tf.name == "outputs.tf":
            outputs = blocks(parsed, "output")
        elif blocks(parsed, "output"):
            problems.append(f"{tf}: outputs belong in outputs.tf")
        if tf.name == "versions.tf":
            text = tf.read_text(encoding="utf-8")
            if not re.search(r'required_version\s*=\s*">=\s*1\.7', text):
                problems.append(f"{tf}: required_version must be \">= 1.7\"")
            if not re.search(r'version\s*=\s*">=\s*6\.', text):
                problems.append(f"{tf}: the aws provider must be \">= 6.0\"")
        for number, line in enumerate(tf.read_text(encoding="utf-8").splitlines(), start=1):
            if SKIP_RE.search(line) and not SKIP_OK_RE.search(line):
                problems.append(f"{tf}:{number}: checkov skip without a check id and a reason")

    if not is_example:
        first = [name for name, _ in variables[:3]]
        if first != ["create", "name", "tags"]:
            problems.append(f"{rel}/variables.tf: the first variables must be create, name, tags (found {first})")
    for name, body in variables:
        if not str(body.get("description", "")).strip('"'):
            problems.append(f"{rel}: variable {name} has no description")
        var_type = str(body.get("type", ""))
        if not var_type:
            problems.append(f"{rel}: variable {name} has no type")
        elif re.search(r"\bany\b", var_type):
            problems.append(f"{rel}: variable {name} uses `any`; use a typed object with optional()")
        if name == "name" and not is_example and not body.get("validation"):
            problems.append(f"{rel}: variable name has no validation block")
    for name, body in outputs:
        if not str(body.get("description", "")).strip('"'):
            problems.append(f"{rel}: output {name} has no description")

    problems += check_tests(directory, variables, outputs)

    readme = directory / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        for kind, items in (("input", variables), ("output", outputs)):
            for name, _ in items:
                if f"`{name}`" not in text:
                    problems.append(f"{readme}: does not document {kind} `{name}`")
        if not is_example and "cost" not in text.lower():
            problems.append(f"{readme}: no monthly cost drivers section")
    return problems


REF_PATTERNS = {
    "output": re.compile(r"(?<![\w.])output\.([A-Za-z0-9_]+)"),
    "var": re.compile(r"(?<![\w.])var\.([A-Za-z0-9_]+)"),
    "resource": re.compile(r"(?<![\w.\"])(aws_[a-z0-9_]+)\.([A-Za-z0-9_]+)"),
    "data": re.compile(r"(?<![\w.])data\.(aws_[a-z0-9_]+)\.([A-Za-z0-9_]+)"),
    "module": re.compile(r"(?<![\w.])module\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)"),
}


def declared(directory: Path) -> dict:
    """Resources, data sources and module calls (name -> source) declared in a module."""
    found: dict = {"resource": set(), "data": set(), "module": {}}
    for tf in sorted(directory.glob("*.tf")):
        parsed = parse(tf)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name in named:
                        found[kind].add((unquote(rtype), unquote(name)))
        for name, body in blocks(parsed, "module"):
            found["module"][name] = str(body.get("source", "")).strip('"')
    return found


def module_outputs(directory: Path) -> set[str]:
    path = directory / "outputs.tf"
    return {name for name, _ in blocks(parse(path), "output")} if path.is_file() else set()


def check_tests(directory: Path, variables: list, outputs: list) -> list[str]:
    """Checks that test files refer to things the module declares."""
    problems = []
    var_names = {name for name, _ in variables}
    out_names = {name for name, _ in outputs}
    decl = declared(directory)
    for test in sorted((directory / "tests").glob("*.tftest.hcl")):
        parsed = parse(test)
        # Input names set by the file and by each run.
        settings = [b for b in parsed.get("variables", [])]
        for run in parsed.get("run", []):
            for body in run.values():
                settings += body.get("variables", [])
        for block in settings:
            for key in block:
                if not key.startswith("__") and unquote(key) not in var_names:
                    problems.append(f"{test}: sets unknown variable {unquote(key)}")
        text = "\n".join(line for line in test.read_text(encoding="utf-8").splitlines()
                         if not line.lstrip().startswith(("#", "//", "mock_", "defaults")))
        for name in REF_PATTERNS["output"].findall(text):
            if name not in out_names:
                problems.append(f"{test}: output.{name} is not an output of {directory.name}")
        for name in REF_PATTERNS["var"].findall(text):
            if name not in var_names:
                problems.append(f"{test}: var.{name} is not a variable of {directory.name}")
        data_refs = set(REF_PATTERNS["data"].findall(text))
        for ref in data_refs:
            if ref not in decl["data"]:
                problems.append(f"{test}: data.{ref[0]}.{ref[1]} is not declared")
        stripped = REF_PATTERNS["data"].sub("", text)
        for ref in set(REF_PATTERNS["resource"].findall(stripped)):
            if ref not in decl["resource"]:
                problems.append(f"{test}: {ref[0]}.{ref[1]} is not declared")
        for name, output in set(REF_PATTERNS["module"].findall(text)):
            source = decl["module"].get(name)
            if source is None:
                problems.append(f"{test}: module.{name} is not declared")
            elif output not in module_outputs((directory / source).resolve()):
                problems.append(f"{test}: module.{name}.{output} is not an output of {source}")
    return problems


ASSIGN_RE = re.compile(r'^(\s*)([A-Za-z0-9_"\-.]+(?:\[[^\]]*\])?)\s*=(?!=)\s*(.*)$')
HEREDOC_RE = re.compile(r"<<-?([A-Za-z_]+)\s*$")


def _code(text: str) -> str:
    """The text outside string literals and comments."""
    out, i, quoted = [], 0, False
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 2
                continue
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == "#" or text.startswith("//", i):
            break
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _net_brackets(text: str) -> int:
    code = _code(text)
    return sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")


def check_alignment(path: Path) -> list[str]:
    """Misaligned `=` in runs of single-line assignments (what terraform fmt would change)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    matches: list = []
    heredoc_end = None
    for line in lines:
        if heredoc_end is not None:
            matches.append(None)
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        heredoc = HEREDOC_RE.search(line)
        if heredoc:
            heredoc_end = heredoc.group(1)
            matches.append(None)
            continue
        match = ASSIGN_RE.match(line)
        ok = match and not line.lstrip().startswith("#") and _net_brackets(match.group(3)) == 0
        matches.append(match if ok else None)
    problems = []
    i = 0
    while i < len(lines):
        if matches[i] is None:
            i += 1
            continue
        j = i
        while j < len(lines) and matches[j] is not None:
            j += 1
        width = max(len(m.group(1)) + len(m.group(2)) for m in matches[i:j])
        for k in range(i, j):
            m = matches[k]
            want = f"{m.group(1)}{m.group(2)}{' ' * (width - len(m.group(1)) - len(m.group(2)) + 1)}= {m.group(3)}".rstrip()
            if want != lines[k].rstrip():
                problems.append(f"{path}:{k + 1}: not aligned as terraform fmt would: {lines[k].strip()}")
        i = j
    return problems


def main() -> int:
    terraform = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "terraform"
    if not terraform.is_dir():
        print(f"check_terraform_conventions: {terraform} is not a directory", file=sys.stderr)
        return 2
    modules = [(terraform, False)]
    modules += [(d, False) for d in sorted((terraform / "modules").iterdir()) if d.is_dir()]
    modules += [(d, True) for d in sorted((terraform / "examples").iterdir()) if d.is_dir()]
    problems: list[str] = []
    try:
        for directory, is_example in modules:
            problems += check_module(directory, is_example)
    except Exception as exc:  # python-hcl2 raises lark errors of many kinds
        print(f"check_terraform_conventions: cannot parse: {exc}", file=sys.stderr)
        return 2
    for path in sorted(p for pattern in ("*.tf", "*.tftest.hcl") for p in terraform.rglob(pattern)):
        if ".terraform" not in path.parts:
            problems += check_alignment(path)
    root_readme = terraform / "README.md"
    if root_readme.is_file():
        text = root_readme.read_text(encoding="utf-8")
        for directory, _ in modules[1:]:
            link = str(directory.relative_to(terraform))
            if f"({link}" not in text and f"(./{link}" not in text:
                problems.append(f"{root_readme}: does not link {link}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"check_terraform_conventions: {len(modules)} modules, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
