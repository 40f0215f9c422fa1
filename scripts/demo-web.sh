#!/usr/bin/env bash
# The web UI, with a throw-away identity provider: starts the test OpenID provider
# (tests/oidc/provider.mjs, accounts alice, bob and carol, any password) and countersign
# with config/countersign.toml plus an [oidc] section for it, on http://127.0.0.1:7070.
# alice asks for prod-db; open http://127.0.0.1:7070/ and sign in as bob to approve it
# from the browser (or as alice, to see why she cannot). Runs until Ctrl-C; without a
# terminal (and without --keep) it checks that the sign-in starts, and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-node.sh
[ -d tests/oidc/node_modules/oidc-provider ] || npm ci --prefix tests/oidc --no-audit --no-fund
cargo build --locked --quiet
cs="$PWD/target/debug/countersign"
work="$(mktemp -d)"
idp_pid=""
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [ -n "$idp_pid" ] && kill "$idp_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
url="http://127.0.0.1:7070"
secret="demo-client-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

cat >"$work/idp.json" <<JSON
{"clients": [{"client_id": "countersign", "client_secret": "$secret",
  "redirect_uris": ["$url/v1/oidc/callback"]}],
 "accounts": {
  "alice": {"sub": "sub-alice", "preferred_username": "alice", "groups": []},
  "bob": {"sub": "sub-bob", "preferred_username": "bob", "groups": []},
  "carol": {"sub": "sub-carol", "preferred_username": "carol", "groups": []}}}
JSON
# The provider exits when its stdin closes: a pipe this script holds open until it ends.
mkfifo "$work/idp.in"
IDP_PORT=0 IDP_STATE="$work/idp.json" node tests/oidc/provider.mjs \
  <"$work/idp.in" >"$work/idp.out" 2>"$work/idp.log" &
idp_pid=$!
exec 3>"$work/idp.in"
for _ in $(seq 1 100); do grep -q '^ready' "$work/idp.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$work/idp.out" || { cat "$work/idp.log"; echo "the test provider did not start" >&2; exit 1; }
issuer="$(awk '/^ready/ {print $2; exit}' "$work/idp.out")"

# The demo policy with [oidc]; its data (database, CA key) fresh in the temporary folder.
umask 077
printf '%s\n' "$secret" >"$work/oidc-secret"
{ sed "s|^data_dir = \"data\"|data_dir = \"$work/data\"|" config/countersign.toml
  cat <<TOML

[oidc]
issuer = "$issuer"
client_id = "countersign"
client_secret_file = "$work/oidc-secret"
public_url = "$url"
allow_insecure_loopback_issuer = true     # the throw-away provider speaks plain HTTP
TOML
} >"$work/countersign.toml"
export COUNTERSIGN_CONFIG="$work/countersign.toml" COUNTERSIGN_URL="$url"
"$cs" init >/dev/null
"$cs" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$url/v1/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "countersign serve failed (is port 7070 busy?)" >&2; exit 1; }
  sleep 0.1
done

alice_token="$("$cs" token create alice)"
ssh-keygen -q -t ed25519 -N '' -C alice@laptop -f "$work/id_ed25519"
COUNTERSIGN_TOKEN="$alice_token" "$cs" request prod-db --ttl 45m --key "$work/id_ed25519.pub" \
  --reason "INC-4211: replica lag on db1"

# A page without a session goes to the sign-in, which goes to the provider.
first="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$url/")"
echo "GET / without a session: $first"
case "$first" in 303\ *"/login?next="*) ;; *) echo "unexpected answer" >&2; exit 1 ;; esac

if [ -t 0 ] || [ "${1:-}" = "--keep" ]; then
  printf '\n\033[1m== open %s/ and sign in as bob (any password) to review and approve;\033[0m\n' "$url"
  printf '\033[1m== as alice to see why she cannot; Ctrl-C stops everything\033[0m\n'
  wait "$server_pid" || true
fi
