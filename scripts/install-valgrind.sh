#!/usr/bin/env bash
# Installs valgrind from Debian's archive when missing: `countersign-bench instructions`
# counts server instructions per flow under its callgrind (bench/tests smoke-test it).
set -euo pipefail
if command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing valgrind..." >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends valgrind >/dev/null
