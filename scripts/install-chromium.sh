#!/usr/bin/env bash
# Installs Debian's chromium when missing: the sign-in tests drive a real headless browser
# through the provider's pages and countersign's (tests/oidc/browser.mjs, with Playwright's
# playwright-core package, which downloads no browser of its own).
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing chromium..." >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
