#!/usr/bin/env bash
# Formatting, strictly: `cargo fmt --check`, and then rustfmt's own report of what it could
# not format (a line it cannot bring under 100 columns: a long string literal, comment or
# expression it gives up on leaves the code around it unformatted too). The second check
# needs rustfmt's unstable options, so a nightly rustfmt: installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
if ! rustup run nightly rustfmt --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal --component rustfmt
fi
find src tests bench -name '*.rs' -print0 | xargs -0 rustup run nightly rustfmt \
    --edition 2024 --check --color never \
    --config error_on_line_overflow=true,error_on_unformatted=true,skip_children=true
