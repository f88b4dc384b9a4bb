#!/usr/bin/env bash
# Builds one fuzz target (release profile) and fuzzes it for SECONDS.
# Usage: fuzz/run.sh TARGET SECONDS [extra libFuzzer options...]
#   New inputs go to fuzz/target/work/TARGET (not committed); the committed corpus
#   fuzz/corpus/TARGET is read. Crashes land in fuzz/artifacts/TARGET/. Keep what the run
#   found with fuzz/merge.sh TARGET. Prints libFuzzer's final statistics.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

if [ $# -lt 2 ]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer options...]; targets: ${TARGETS[*]}" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2
max_len "$target" >/dev/null

bash "$FUZZ_DIR/build.sh" "$target"
work="$FUZZ_DIR/target/work/$target"
artifacts="$FUZZ_DIR/artifacts/$target"
mkdir -p "$work" "$artifacts" "$FUZZ_DIR/corpus/$target"
# shellcheck disable=SC2046 # the options are words
exec "$(target_bin "$target" release)" $(fuzz_opts "$target") \
    -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$@" "$work" "$FUZZ_DIR/corpus/$target"
