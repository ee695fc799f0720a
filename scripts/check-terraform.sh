#!/usr/bin/env bash
# Terraform checks, run by ./scripts/test.sh; works from any directory.
#
#   1. tfcheck (../shared/tools/tfcheck, when present): AWS provider schema and references, 0 errors
#   2. checkov on terraform/ (offline): 0 failed checks; every skip carries an inline reason
#   3. every .tf and .tftest.hcl parses with python-hcl2; the `settings` output matches scripts/toolshed-settings.txt
#      (and the settings check catches bad input); module conventions (create/name/tags first,
#      descriptions, versions, READMEs, tests and what they refer to)
#   4. the verification buildspec run for real against the Docker engine and a local registry
#      (scripts/check_buildspec.py; needs TOOLSHED_TEST_DOCKER=1 and TOOLSHED_TEST_REGISTRY)
#
# Environment:
#   TOOLSHED_CHECKOV      checkov binary (default: .venv-checkov/bin/checkov, then PATH)
#   TOOLSHED_TEST_PYTHON  python with python-hcl2 and PyYAML (default: .venv/bin/python, then python3)
#                         (not checkov's venv: its bc-python-hcl2 replaces the hcl2 module)
#   TOOLSHED_TEST_DOCKER, TOOLSHED_TEST_REGISTRY, TOOLSHED_REQUIRE_BACKENDS: see step 4
#   CI                    when "true": a missing ../shared tfcheck fails instead of being skipped
#                         (a missing checkov or python-hcl2 always fails)
# Exit status: 0 when every check passes; 1 otherwise. The last line is a summary.
# No Terraform binary runs here: the *.tftest.hcl files are parsed and checked, never executed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tf_dir="$root/terraform"
shared_tfcheck="$root/../shared/tools/tfcheck/tfcheck.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python=${TOOLSHED_TEST_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
checkov=${TOOLSHED_CHECKOV:-}
if [ -z "$checkov" ]; then
  if [ -x "$root/.venv-checkov/bin/checkov" ]; then checkov="$root/.venv-checkov/bin/checkov"; else checkov=$(command -v checkov || true); fi
fi

failures=()
summary=()
log() { printf '%s\n' "--> $*" >&2; }
join() { local IFS='|'; local joined="$*"; printf '%s' "${joined//|/; }"; }

if ! "$python" -c 'import hcl2' 2>/dev/null; then
  echo "check-terraform: $python cannot import hcl2 (install python-hcl2)" >&2
  echo "check-terraform: FAILED (python-hcl2 missing)"
  exit 1
fi

# ------------------------------------------------------------------ 1. tfcheck
if [ -f "$shared_tfcheck" ]; then
  log "tfcheck"
  if "$python" "$shared_tfcheck" --no-notes "$tf_dir" >"$work/tfcheck.out" 2>&1; then
    tf_rc=0
  else
    tf_rc=$?
  fi
  cat "$work/tfcheck.out" >&2
  line=$(grep -E '^tfcheck: ' "$work/tfcheck.out" | tail -1)
  summary+=("${line:-tfcheck: no summary}")
  [ "$tf_rc" -eq 0 ] || failures+=("tfcheck (exit $tf_rc)")
elif [ "${CI:-}" = "true" ]; then
  failures+=("tfcheck missing under CI ($shared_tfcheck not found)")
  summary+=("tfcheck: missing")
else
  summary+=("tfcheck: skipped (no ../shared)")
fi

# ------------------------------------------------------------------ 2. checkov
if [ -z "$checkov" ] || [ ! -x "$checkov" ]; then
  failures+=("checkov not found (set TOOLSHED_CHECKOV)")
  summary+=("checkov: missing")
else
  log "checkov"
  # Offline: no external modules, no Prisma Cloud downloads.
  (cd "$root" && "$checkov" -d terraform/ --framework terraform --compact \
    --download-external-modules false --skip-download -o json) >"$work/checkov.json" 2>"$work/checkov.err"
  ck_rc=$?
  if ! "$python" - "$work/checkov.json" >"$work/checkov.txt" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
passed = failed = skipped = parse_errors = 0
for report in reports:
    summary = report.get("summary", report)
    passed += summary.get("passed", 0)
    failed += summary.get("failed", 0)
    skipped += summary.get("skipped", 0)
    parse_errors += summary.get("parsing_errors", 0)
    results = report.get("results", {})
    for check in results.get("failed_checks", []):
        lines = check.get("file_line_range", [])
        print(f"FAILED {check['check_id']} {check.get('check_name', '')}\n  {check['resource']} "
              f"({check.get('file_path', '')}:{'-'.join(map(str, lines))})", file=sys.stderr)
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        if not reason or reason == "No comment provided":
            print(f"SKIPPED WITHOUT REASON {check['check_id']} {check['resource']}", file=sys.stderr)
            failed += 1
print(f"checkov: {passed} passed, {failed} failed, {skipped} skipped, {parse_errors} parsing errors")
sys.exit(1 if failed or parse_errors or passed == 0 else 0)
PY
  then
    failures+=("checkov")
  fi
  if [ "$ck_rc" -ne 0 ] && [ "$ck_rc" -ne 1 ]; then
    cat "$work/checkov.err" >&2
    failures+=("checkov crashed (exit $ck_rc)")
  fi
  cat "$work/checkov.txt" >&2
  summary+=("$(tail -1 "$work/checkov.txt" 2>/dev/null || echo 'checkov: no summary')")
fi

# ------------------------------------------------------------------ 3. HCL, settings, conventions
log "python-hcl2 parse"
if "$python" - "$tf_dir" >"$work/parse.txt" <<'PY'
import sys
from pathlib import Path
import hcl2
bad = 0
root = Path(sys.argv[1])
files = sorted(p for pattern in ("*.tf", "*.tftest.hcl") for p in root.rglob(pattern) if ".terraform" not in p.parts)
for path in files:
    try:
        with path.open(encoding="utf-8") as handle:
            hcl2.load(handle)
    except Exception as exc:
        bad += 1
        print(f"{path}: {exc}", file=sys.stderr)
print(f"hcl2: {len(files)} files parsed, {bad} errors")
sys.exit(1 if bad or not files else 0)
PY
then :; else failures+=("hcl2 parse"); fi
summary+=("$(tail -1 "$work/parse.txt")")

log "settings map"
if "$python" "$root/scripts/check_settings_map.py" >"$work/settings.txt"; then :; else failures+=("settings map"); fi
cat "$work/settings.txt" >&2
summary+=("$(tail -1 "$work/settings.txt")")
if "$python" "$root/scripts/check_settings_map.py" --self-test >"$work/selftest.txt" 2>&1; then :; else
  cat "$work/selftest.txt" >&2
  failures+=("settings map self-test")
fi

log "conventions"
if "$python" "$root/scripts/check_terraform_conventions.py" "$tf_dir" >"$work/conventions.txt"; then :; else failures+=("conventions"); fi
summary+=("$(tail -1 "$work/conventions.txt")")

# ------------------------------------------------------------------ 4. the buildspec, for real
# Docker engine + local registry (TOOLSHED_TEST_DOCKER, TOOLSHED_TEST_REGISTRY from scripts/test.sh);
# prints "skipped: <reason>" without them unless TOOLSHED_REQUIRE_BACKENDS=1.
log "buildspec (Docker engine, local registry)"
if "$python" "$root/scripts/check_buildspec.py" >"$work/buildspec.txt" 2>"$work/buildspec.err"; then :; else
  cat "$work/buildspec.err" >&2
  failures+=("buildspec")
fi
cat "$work/buildspec.txt" >&2
summary+=("$(tail -1 "$work/buildspec.txt" 2>/dev/null || echo 'check_buildspec: no summary')")

# ------------------------------------------------------------------ summary
printf '  %s\n' "${summary[@]}" >&2
if [ "${#failures[@]}" -gt 0 ]; then
  echo "check-terraform: FAILED: $(join "${failures[@]}") | $(join "${summary[@]}")"
  exit 1
fi
echo "check-terraform: OK | $(join "${summary[@]}")"
