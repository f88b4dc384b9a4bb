#!/usr/bin/env bash
# Builds fuzz targets with libFuzzer on the pinned stable toolchain: plain cargo with the
# sancov RUSTFLAGS that cargo-fuzz would pass (no sanitizer, so no nightly -Z flags; Rust's own
# checks — panics, overflow checks, debug assertions — are what finds bugs).
# Usage: fuzz/build.sh [TARGET...]     (no argument: every target)
#   FUZZ_PROFILE=release|smoke   cargo profile (default release: optimised, for long runs)
#   FUZZ_FEATURES=...            cargo features (default `shim`; the smoke run sets none)
# Binaries land in fuzz/target/<host triple>/<profile>/.
set -euo pipefail
cd "$(dirname "$0")"

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$PWD/target"
# With an explicit --target, RUSTFLAGS reach only the target's crates, not build scripts and
# proc macros (which are not linked with libFuzzer). They are set for this cargo call only.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing"
args=(--profile "${FUZZ_PROFILE:-release}" --target "$TRIPLE")
features=${FUZZ_FEATURES-shim}
[ -n "$features" ] && args+=(--features "$features")
if [ $# -eq 0 ]; then
    args+=(--bins)
else
    for t in "$@"; do args+=(--bin "$t"); done
fi
exec cargo build "${args[@]}"
