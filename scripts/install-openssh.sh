#!/usr/bin/env bash
# Installs the OpenSSH server and client (and curl) from Debian's archive when missing.
# The tests and the demo run a throw-away sshd and the real ssh/ssh-keygen.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null \
  && command -v curl >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "installing openssh-server, openssh-client and curl..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssh-server openssh-client curl >/dev/null
