#!/usr/bin/env bash
# Runs every test: unit, property, HTTP integration, CLI, and end-to-end against a real
# OpenSSH sshd, and the benchmark's smoke tests (bench/, a workspace member); then the
# integration suite once more with every test server on PostgreSQL (a throw-away cluster
# the tests start themselves, tests/it/pg.rs), so that both storage backends pass the
# same tests. Installs OpenSSH, PostgreSQL, Node.js and Chromium first if they are
# missing, the OpenID provider and the browser driver that the OIDC tests run
# (tests/oidc, npm packages), the Python checkers (tests/py: webhook signatures, the
# Prometheus parser, Schemathesis, an OpenAPI validator), and zsh and fish for the
# completion tests. Last, the Debian package is built, installed, checked and purged
# (scripts/test-package.sh). Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-openssh.sh
scripts/install-postgres.sh
scripts/install-node.sh
scripts/install-chromium.sh
scripts/install-python.sh
scripts/install-shells.sh
scripts/install-valgrind.sh
if [ ! -d tests/oidc/node_modules/oidc-provider ] || [ ! -d tests/oidc/node_modules/playwright-core ]; then
  npm ci --prefix tests/oidc --no-audit --no-fund
fi
cargo test --locked --workspace "$@"
echo "== the integration suite again, on PostgreSQL (COUNTERSIGN_TEST_BACKEND=postgres)" >&2
# (The tests that name their backend themselves, such as the races and the replica
# tests, already ran on PostgreSQL above; idp:: tests the OpenID provider harness alone,
# with no store.)
COUNTERSIGN_TEST_BACKEND=postgres cargo test --locked --test it "$@" -- \
  --skip ha:: --skip replicas:: --skip concurrency:: --skip idp::
echo "== the Debian package, built, installed and purged (scripts/test-package.sh)" >&2
scripts/test-package.sh
