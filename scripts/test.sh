#!/usr/bin/env bash
# Runs every test: unit, property, HTTP integration, CLI, and end-to-end against a real
# OpenSSH sshd, and the benchmark's smoke tests (bench/, a workspace member).
# Installs OpenSSH and PostgreSQL first if they are missing. Extra arguments go to cargo
# test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-openssh.sh
scripts/install-postgres.sh
cargo test --locked --workspace "$@"
