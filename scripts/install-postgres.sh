#!/usr/bin/env bash
# Installs Debian's PostgreSQL server (initdb, pg_ctl, postgres, psql) when missing. The
# PostgreSQL tests (tests/it/pg.rs) run a throw-away cluster of their own as the
# `postgres` user; they need the binaries, not the system service, so no default cluster
# is created (nothing for the package's service to start).
set -euo pipefail
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing postgresql (server binaries only, no cluster)..." >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq postgresql-common >/dev/null
# The official postgres Docker image does the same: postgresql-common reads this before
# the server package's postinst would create and start a "main" cluster.
$sudo sed -ri 's/^#? *create_main_cluster *=.*$/create_main_cluster = false/' \
  /etc/postgresql-common/createcluster.conf
$sudo apt-get install -y -qq postgresql >/dev/null
