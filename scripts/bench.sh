#!/usr/bin/env bash
# Builds countersign and countersign-bench in release mode and runs `countersign-bench
# run`: baselines (raw Ed25519, ssh-keygen -s), in-process signing, full durable HTTP
# flows with 1 and 32 clients against `countersign serve`, a 1,000,000-certificate
# database loaded in turns with the small one, audit verify speed and server peak RSS
# (docs/benchmark.md).
# Extra arguments go to `countersign-bench run` (e.g. --json, --flows 50000, --scale-rows 0).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet --workspace
exec "${CARGO_TARGET_DIR:-target}/release/countersign-bench" run "$@"
