#!/usr/bin/env python3
"""Checks the Terraform root module's `settings` output against scripts/toolshed-settings.txt.

Every key of the `settings` output map must be a setting the Rust crate documents (listed in the
settings file), and every listed setting must be in the map unless its line is marked
`not-output`. The map may be written inline in the output or built from locals (`merge(...)`,
conditionals with object literals); keys are read from the HCL with python-hcl2.

Usage:
    check_settings_map.py [--terraform-dir DIR] [--settings-file FILE]
    check_settings_map.py --self-test     # shows that the check fails on bad input

Exit status: 0 clean, 1 mismatches, 2 usage or parse problem.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - reported to the user
    print("check_settings_map: python-hcl2 is not installed (pip install python-hcl2)", file=sys.stderr)
    sys.exit(2)

ROOT = Path(__file__).resolve().parent.parent
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# `KEY =` (not `==`) right after `{` or `,`: a key of an object literal inside an expression.
OBJECT_KEY_RE = re.compile(r'[{,]\s*"?([A-Za-z_][A-Za-z0-9_]*)"?\s*=(?!=)')
LOCAL_REF_RE = re.compile(r"\blocal\.([A-Za-z_][A-Za-z0-9_]*)")


class CheckError(Exception):
    """A problem that stops the check (unparseable input, missing output)."""


def unquote(key: str) -> str:
    """python-hcl2 8 keeps the quotes of block labels."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def load_module(directory: Path) -> tuple[dict, dict]:
    """Returns (locals, outputs) of the .tf files of one module directory."""
    locals_: dict = {}
    outputs: dict = {}
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise CheckError(f"no .tf files in {directory}")
    for path in files:
        try:
            with path.open(encoding="utf-8") as handle:
                parsed = hcl2.load(handle)
        except Exception as exc:  # python-hcl2 raises lark errors of many kinds
            raise CheckError(f"{path}: cannot parse: {exc}") from exc
        for block in parsed.get("locals", []):
            for key, value in block.items():
                if not key.startswith("__"):
                    locals_[unquote(key)] = value
        for block in parsed.get("output", []):
            for key, value in block.items():
                outputs[unquote(key)] = value
    return locals_, outputs


def keys_of(value, locals_: dict, seen: frozenset = frozenset()) -> set[str]:
    """Keys of a map value: an object literal, or an expression of object literals and locals."""
    if isinstance(value, dict):
        return {unquote(k) for k in value if not k.startswith("__")}
    if not isinstance(value, str):
        return set()
    keys = set(OBJECT_KEY_RE.findall(value))
    for name in LOCAL_REF_RE.findall(value):
        if name in seen:
            continue
        if name not in locals_:
            raise CheckError(f"the settings map refers to local.{name}, which is not defined")
        local_value = locals_[name]
        # A boolean or scalar local (e.g. a condition) holds no keys.
        keys |= keys_of(local_value, locals_, seen | {name})
    return keys


def read_settings_file(path: Path) -> tuple[set[str], set[str], list[str]]:
    """Returns (names, names marked not-output, problems)."""
    names: set[str] = set()
    not_output: set[str] = set()
    problems: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text, _, comment = raw.partition("#")
        name = text.strip()
        if not name:
            continue
        if not NAME_RE.match(name):
            problems.append(f"{path}:{number}: {name!r} is not an environment variable name")
            continue
        if name in names:
            problems.append(f"{path}:{number}: {name} is listed twice")
        names.add(name)
        if "not-output" in comment:
            not_output.add(name)
    if not names:
        problems.append(f"{path}: lists no settings")
    return names, not_output, problems


def check(terraform_dir: Path, settings_file: Path) -> list[str]:
    """Returns the problems found (empty when clean)."""
    names, not_output, problems = read_settings_file(settings_file)
    locals_, outputs = load_module(terraform_dir)
    if "settings" not in outputs:
        raise CheckError(f"{terraform_dir}: no output \"settings\"")
    value = outputs["settings"].get("value")
    keys = keys_of(value, locals_)
    if not keys:
        raise CheckError(f"{terraform_dir}: cannot find any key in output \"settings\" = {value!r}")
    for key in sorted(keys - names):
        problems.append(f"output settings: {key} is not a setting the crate documents ({settings_file.name})")
    for name in sorted(names - keys - not_output):
        problems.append(f"{settings_file.name}: {name} is missing from output settings (mark it not-output if intended)")
    for name in sorted(keys & not_output):
        problems.append(f"output settings: {name} is marked not-output in {settings_file.name}")
    print(f"check_settings_map: {len(keys)} keys in output settings, {len(names)} documented settings, {len(problems)} problems")
    return problems


def self_test() -> int:
    """Runs the check on bad inputs and fails unless each one is caught."""
    cases = {
        "unknown key": ('output "settings" {\n  value = merge(local.a, { TOOLSHED_TYPO = "x" })\n}\n'
                        'locals {\n  a = { AWS_REGION = "r" }\n}\n', "AWS_REGION\n"),
        "missing key": ('output "settings" {\n  value = { AWS_REGION = "r" }\n}\n', "AWS_REGION\nAWS_SUBNETS\n"),
        "conditional local": ('output "settings" {\n  value = merge(local.a, local.b)\n}\n'
                              'locals {\n  a = { AWS_REGION = "r" }\n  b = var.x ? { SECRET_ARN = "s" } : {}\n}\n',
                              "AWS_REGION\n"),
    }
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, (tf, listing) in cases.items():
            case_dir = Path(tmp) / label.replace(" ", "-")
            case_dir.mkdir()
            (case_dir / "main.tf").write_text(tf, encoding="utf-8")
            (case_dir / "settings.txt").write_text(listing, encoding="utf-8")
            problems = check(case_dir, case_dir / "settings.txt")
            if problems:
                print(f"self-test {label}: caught ({problems[0]})")
            else:
                print(f"self-test {label}: NOT caught", file=sys.stderr)
                failures += 1
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terraform-dir", type=Path, default=ROOT / "terraform")
    parser.add_argument("--settings-file", type=Path, default=ROOT / "scripts" / "toolshed-settings.txt")
    parser.add_argument("--self-test", action="store_true", help="check that bad inputs are caught")
    args = parser.parse_args()
    try:
        if args.self_test:
            return self_test()
        problems = check(args.terraform_dir, args.settings_file)
    except (CheckError, OSError) as exc:
        print(f"check_settings_map: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
