#!/usr/bin/env bash
# Builds countersign and countersign-bench in release mode and runs `countersign-bench
# run`: baselines (raw Ed25519, ssh-keygen -s), in-process signing, full durable HTTP
# flows with 1 and 32 clients against `countersign serve`, a 1,000,000-certificate
# database loaded in turns with the small one, audit verify speed and server peak RSS
# (docs/benchmark.md).
# Extra arguments go to `countersign-bench run` (e.g. --json, --flows 50000, --scale-rows 0).
#
# With `--backend postgres [--replicas N]` it first starts a throw-away PostgreSQL
# cluster (initdb into a temp dir, as the `postgres` user when run as root; 127.0.0.1 on
# a random port; fsync and synchronous_commit on), runs N `countersign serve` replicas on
# one database of it in turns with the SQLite server, and removes the cluster at the end.
# COUNTERSIGN_BENCH_PG_CONF adds lines to its postgresql.conf (e.g. to load
# pg_stat_statements while looking for where the time goes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet --workspace
target="${CARGO_TARGET_DIR:-target}"
[[ "$target" == /* ]] || target="$(pwd)/$target"
bench="$target/release/countersign-bench"

postgres=no
prev=""
for a in "$@"; do
    if [[ "$a" == "--backend=postgres" || ("$prev" == "--backend" && "$a" == "postgres") ]]; then
        postgres=yes
    fi
    prev="$a"
done
if [[ $postgres == no ]]; then
    exec "$bench" run "$@"
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$pgbin" || ! -x "$pgbin/initdb" ]]; then
    echo "bench.sh: --backend postgres needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)" >&2
    exit 1
fi
as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
root=$(mktemp -d /tmp/countersign-bench-pg-XXXXXX)
cleanup() {
    (cd "$root" && as_pg "$pgbin/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1) || true
    rm -rf "$root"
}
trap cleanup EXIT
[[ $(id -u) == 0 ]] && chown postgres: "$root"
secret() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
super_pw=$(secret)
role_pw=$(secret)
echo "$super_pw" >"$root/pwfile"
[[ $(id -u) == 0 ]] && chown postgres: "$root/pwfile"
(cd "$root" && as_pg env LC_ALL=C "$pgbin/initdb" -D "$root/data" -A scram-sha-256 -U postgres \
    -E UTF8 --locale=C --pwfile="$root/pwfile" --no-sync >/dev/null)
rm -f "$root/pwfile"
cat >>"$root/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$root'
max_connections = 300
fsync = on
synchronous_commit = on
${COUNTERSIGN_BENCH_PG_CONF:-}
EOF
# Statements per flow are counted by pg_stat_statements, when this PostgreSQL has it.
stat_statements=no
if [[ -e "$(dirname "$pgbin")/lib/pg_stat_statements.so" ]]; then
    echo "shared_preload_libraries = 'pg_stat_statements'" >>"$root/data/postgresql.conf"
    stat_statements=yes
fi
started=no
for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 10000))
    echo "port = $port" >>"$root/data/postgresql.conf"
    if (cd "$root" && as_pg "$pgbin/pg_ctl" -D "$root/data" -l "$root/log" -w -t 60 start >/dev/null); then
        started=yes
        break
    fi
done
if [[ $started == no ]]; then
    echo "bench.sh: PostgreSQL did not start:" >&2
    cat "$root/log" >&2
    exit 1
fi
PGPASSWORD="$super_pw" psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE countersign LOGIN PASSWORD '$role_pw'" \
    -c "CREATE DATABASE countersign OWNER countersign"
if [[ $stat_statements == yes ]]; then
    PGPASSWORD="$super_pw" psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d countersign \
        -c "CREATE EXTENSION pg_stat_statements"
fi
# What PostgreSQL alone does on this machine: the trivial statement `SELECT 1` from 32
# connections (pgbench, prepared), beside which a flow's statement count sets a ceiling.
if [[ -x "$pgbin/pgbench" ]]; then
    echo 'SELECT 1;' >"$root/select1.sql"
    rate=$(PGPASSWORD="$super_pw" "$pgbin/pgbench" -n -h 127.0.0.1 -p "$port" -U postgres \
        -M prepared -c 32 -j 2 -T 3 -f "$root/select1.sql" countersign 2>/dev/null |
        sed -n 's/^tps = \([0-9]*\).*/\1/p')
    echo "PostgreSQL alone: ${rate:-?} statements/s (SELECT 1, 32 connections, pgbench -M prepared)" >&2
fi
password_file=$(mktemp /tmp/countersign-bench-pgpw-XXXXXX)
trap 'cleanup; rm -f "$password_file"' EXIT
chmod 600 "$password_file"
echo "$role_pw" >"$password_file"
echo "PostgreSQL $(basename "$(dirname "$pgbin")") on 127.0.0.1:$port (fsync on, synchronous_commit on)" >&2
"$bench" run --pg-url "postgres://countersign@127.0.0.1:$port/countersign" \
    --pg-password-file "$password_file" "$@"
