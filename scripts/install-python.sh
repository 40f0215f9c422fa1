#!/usr/bin/env bash
# Makes tests/py/.venv, a Python virtual environment with the independent checkers the
# tests run (tests/py/requirements.txt: `standardwebhooks`, which verifies the signed
# webhooks countersign sends; `prometheus_client`, whose parser reads /metrics;
# `schemathesis`, which fuzzes the live API from its OpenAPI
# document; `openapi-spec-validator`, which checks that document). Needs python3 with
# venv (Debian: python3-venv, installed when missing). Does nothing when the environment
# already has them at the versions pinned there.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=tests/py/.venv
# Every pinned `name==version` of requirements.txt, installed: nothing to do.
have_all() {
  [ -x "$venv/bin/python" ] || return 1
  local installed req
  installed="$("$venv/bin/python" -m pip freeze 2>/dev/null | tr 'A-Z_' 'a-z-')"
  while read -r req; do
    [ -n "$req" ] || continue
    grep -qxF "$(tr 'A-Z_' 'a-z-' <<<"$req")" <<<"$installed" || return 1
  done <tests/py/requirements.txt
}
if have_all; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "installing python3-venv..." >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq python3 python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/py/requirements.txt
