#!/usr/bin/env bash
# Installs cargo-deb, the version scripts/build-deb.sh is tested with, when it is missing
# or another version (from crates.io, built with the machine's Rust: about a minute).
set -euo pipefail
version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" = "cargo-deb $version" ]; then
  exit 0
fi
echo "installing cargo-deb $version..." >&2
cargo install cargo-deb --locked --version "$version" --quiet
