#!/usr/bin/env bash
# Runs each property-test fuzz target of toolshed-core for a bounded time and prints, per
# target, the executions and failures. Failing inputs are saved to
# toolshed-core/tests/proptest-regressions/fuzz_props.txt (commit that file: every later run,
# `cargo nextest` included, replays them first).
#
#   scripts/fuzz.sh                 # 60 s per target
#   FUZZ_SECONDS=10 scripts/fuzz.sh
#   scripts/fuzz.sh fuzz_markdown   # only the named targets
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=(fuzz_repo_url fuzz_git_ref fuzz_tool_arguments fuzz_bridge_framing fuzz_markdown)
if [[ $# -gt 0 ]]; then
    targets=("$@")
fi

echo "building the fuzz targets..."
cargo test -p toolshed-core --test fuzz_props --no-run --quiet || exit 1

status=0
summary=()
for target in "${targets[@]}"; do
    echo "== $target (${seconds} s)"
    out="$(TOOLSHED_FUZZ_SECONDS="$seconds" cargo test -p toolshed-core --test fuzz_props --quiet \
        -- --exact "$target" --nocapture 2>&1)"
    rc=$?
    lines="$(grep '^fuzz target=' <<<"$out")"
    if [[ $rc -ne 0 ]]; then
        status=1
        grep -E 'minimal failing input|panicked|Test failed' <<<"$out" | head -5
    fi
    echo "$lines"
    summary+=("$lines")
done

echo
echo "== summary (targets, executions, failures)"
printf '%s\n' "${summary[@]}"
exit $status
