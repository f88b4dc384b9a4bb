#!/usr/bin/env bash
# Rebuilds the committed corpus fuzz/corpus/TARGET as a minimal set: every seed (`seed-*`) and
# regression reproducer (`regress-*`), plus the fewest inputs of the old corpus and of what
# fuzz/run.sh found (fuzz/target/work/TARGET) that reach every coverage edge they reach
# (libFuzzer -merge=1 with -use_counters=0: edges, not hit counts, so the corpus stays small).
# Usage: fuzz/merge.sh TARGET...
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

for target in "$@"; do
    max_len "$target" >/dev/null
    bash "$FUZZ_DIR/build.sh" "$target"
    corpus="$FUZZ_DIR/corpus/$target"
    work="$FUZZ_DIR/target/work/$target"
    new="$FUZZ_DIR/target/merge/$target"
    rm -rf "$new"
    mkdir -p "$new" "$work" "$corpus"
    before=$(find "$corpus" -type f | wc -l)
    find "$corpus" -type f \( -name 'seed-*' -o -name 'regress-*' \) -exec cp {} "$new/" \;
    # shellcheck disable=SC2046
    "$(target_bin "$target" release)" $(fuzz_opts "$target") -merge=1 -use_counters=0 \
        "$new" "$corpus" "$work" 2>&1 | grep -E "MERGE-OUTER: [0-9]+ new files" || true
    # The old corpus's fuzzer-found inputs are in $new now if they still add coverage.
    cp -r "$corpus" "$work/previous-corpus-$(date +%s)"
    rm -rf "$corpus"
    mv "$new" "$corpus"
    after=$(find "$corpus" -type f | wc -l)
    echo "$target: corpus $before -> $after files, $(du -sh --apparent-size "$corpus" | cut -f1)"
done
