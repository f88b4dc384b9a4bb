#!/usr/bin/env bash
# CI smoke run of every fuzz target: builds them all (profile `smoke`: the same
# instrumentation and checks as the long runs, cheaper to compile), then runs each over its
# committed corpus (every input must pass: the regression check) and fuzzes it for a few
# seconds more, two targets at a time. Exits non-zero on any crash, timeout or OOM, after
# printing libFuzzer's report and a hex dump of the input.
# Usage: fuzz/smoke.sh            (FUZZ_SMOKE_SECONDS=N changes the time per target; 20 s)
# The committed corpus is read only; new inputs and artifacts go to a temp dir.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

per_target=${FUZZ_SMOKE_SECONDS:-20}
t0=$(date +%s)
FUZZ_PROFILE=smoke FUZZ_FEATURES='' bash "$FUZZ_DIR/build.sh"
t1=$(date +%s)
echo "fuzz smoke: build took $((t1 - t0)) s"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

run_one() {
    local target=$1 dir="$tmp/$1"
    mkdir -p "$dir/work" "$dir/artifacts"
    local rc=0
    # shellcheck disable=SC2046 # the options are words
    "$(target_bin "$target" smoke)" $(fuzz_opts "$target") -max_total_time="$per_target" \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
        "$dir/work" "$FUZZ_DIR/corpus/$target" >"$dir/log" 2>&1 || rc=$?
    echo "$rc" >"$dir/rc"
}

# Two at a time: CI has two cores.
for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
    run_one "${TARGETS[$i]}" &
    if [ $((i + 1)) -lt ${#TARGETS[@]} ]; then run_one "${TARGETS[$((i + 1))]}" & fi
    wait
done

failed=()
for target in "${TARGETS[@]}"; do
    dir="$tmp/$target"
    rc=$(cat "$dir/rc")
    inputs=$(find "$FUZZ_DIR/corpus/$target" -type f | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    final=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log" | tail -1 | sed -E 's/^#[0-9]+[[:space:]]+DONE[[:space:]]+//')
    if [ "$rc" = 0 ]; then
        echo "fuzz smoke: $target ok: $inputs corpus inputs, ${execs:-?} runs; ${final:-}"
    else
        failed+=("$target")
        echo "fuzz smoke: $target FAILED (exit $rc); libFuzzer's report:"
        tail -n 60 "$dir/log"
        for a in "$dir"/artifacts/*; do
            [ -f "$a" ] || continue
            echo "--- $(basename "$a") ($(stat -c %s "$a") bytes; first 1 KiB):"
            od -A x -t x1z -v -N 1024 "$a"
        done
    fi
done
echo "fuzz smoke: total $(($(date +%s) - t0)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz smoke: failures in ${failed[*]}; reproduce with fuzz/build.sh TARGET &&" \
        "fuzz/target/$TRIPLE/release/TARGET FILE" >&2
    exit 1
fi
