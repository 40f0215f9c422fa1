#!/usr/bin/env bash
# Builds countersign in release mode and runs `countersign bench`: baselines (raw Ed25519,
# ssh-keygen -s), in-process signing, full durable HTTP flows with 1 and 32 clients, a
# 1,000,000-certificate database loaded in turns with the small one, audit verify speed
# and server peak RSS.
# Extra arguments go to `countersign bench` (e.g. --json, --flows 50000, --scale-rows 0).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
exec target/release/countersign bench "$@"
