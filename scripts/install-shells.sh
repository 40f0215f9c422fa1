#!/usr/bin/env bash
# Installs zsh and fish from Debian's archive when missing: tests/it/packaging.rs loads
# `countersign completions zsh|fish` into the real shells (bash is always there).
set -euo pipefail
if command -v zsh >/dev/null && command -v fish >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing zsh and fish..." >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends zsh fish >/dev/null
