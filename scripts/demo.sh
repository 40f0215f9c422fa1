#!/usr/bin/env bash
# Runs the CA with config/countersign.toml and shows the whole flow against a real sshd:
# the sshd enrolls for a host certificate, alice asks for prod-db, cannot approve
# herself, bob approves, alice logs in with the certificate (her ssh trusting the server
# only by the host CA: no prompt), and the sshd log line's serial leads back to the audit
# trail; then alice breaks the glass and two reviewers review it.
# With a terminal attached, the CA keeps running afterwards until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-openssh.sh
cargo build --locked --quiet
cs="$PWD/target/debug/countersign"
config="$PWD/config/countersign.toml"
export COUNTERSIGN_CONFIG="$config"
export COUNTERSIGN_URL="http://127.0.0.1:7070"
work="$(mktemp -d)"
server_pid=""
sshd_pid=""
cleanup() {
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "countersign check-config"
"$cs" check-config

step "starting countersign serve (data in config/data)"
"$cs" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$COUNTERSIGN_URL/v1/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "countersign serve failed (is port 7070 busy?)" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$COUNTERSIGN_URL/v1/ca.pub" >"$work/ca.pub"
echo "CA public key: $(cat "$work/ca.pub")"

step "tokens for alice (requester), bob (approver, admin), carol and erin (security), created on the CA host"
alice_token="$("$cs" token create alice)"
bob_token="$("$cs" token create bob)"
carol_token="$("$cs" token create carol)"
erin_token="$("$cs" token create erin)"

step "the server enrolls: bob makes a join token, the server spends it on a host certificate"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
(umask 077; COUNTERSIGN_TOKEN="$bob_token" "$cs" host token create \
  --principals 127.0.0.1,localhost >"$work/join.token")
"$cs" host enroll --token-file "$work/join.token" --key "$work/host_key.pub"
ssh-keygen -L -f "$work/host_key-cert.pub" | sed -n '2,/Critical Options/{/Critical Options/!p}'

step "a throw-away sshd on loopback that trusts only the CA key, with its host certificate"
login="$(id -un)"
port="$(shuf -i 20000-60000 -n 1)"
mkdir -p "$work/principals"
echo dba >"$work/principals/$login"   # this account accepts certificates for principal "dba"
cat >"$work/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
HostCertificate $work/host_key-cert.pub
PidFile $work/sshd.pid
TrustedUserCAKeys $work/ca.pub
AuthorizedPrincipalsFile $work/principals/%u
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
PermitRootLogin prohibit-password
CFG
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
echo "sshd on 127.0.0.1:$port: TrustedUserCAKeys + AuthorizedPrincipalsFile ($login accepts principal 'dba')"

ssh-keygen -q -t ed25519 -N '' -C alice@laptop -f "$work/id_ed25519"

step "alice registers her key: countersign keys add (she signs the CA's challenge with it)"
COUNTERSIGN_TOKEN="$alice_token" "$cs" keys add "$work/id_ed25519.pub"

step "alice: countersign request prod-db --ttl 30m --reason ... --wait"
# --poll-seconds (hidden; 5 by default) makes the waiting request notice bob's approval
# within a second, so that the demo does not pause.
COUNTERSIGN_TOKEN="$alice_token" "$cs" request prod-db --ttl 30m --key "$work/id_ed25519.pub" \
  --reason "INC-4211: replica lag on db1" --wait --poll-seconds 1 >"$work/request.out" 2>"$work/request.err" &
request_pid=$!
id=""
for _ in $(seq 1 100); do
  # Her own request's id, as the CLI says it on stderr (not "the newest pending one",
  # which could be another left pending in config/data by an interrupted run).
  id="$(awk '/^request r-/ {print $2; exit}' "$work/request.err")"
  [ -n "$id" ] && break
  kill -0 "$request_pid" 2>/dev/null || { cat "$work/request.err"; exit 1; }
  sleep 0.1
done
echo "request $id is pending"

step "alice tries to approve her own request"
COUNTERSIGN_TOKEN="$alice_token" "$cs" approve "$id" || true

step "bob sees it and approves"
COUNTERSIGN_TOKEN="$bob_token" "$cs" list --status pending
COUNTERSIGN_TOKEN="$bob_token" "$cs" approve "$id" --comment "replica lag confirmed on the dashboard"
wait "$request_pid"
cat "$work/request.err"

step "the certificate (ssh-keygen -L)"
ssh-keygen -L -f "$work/id_ed25519-cert.pub"

step "alice logs in with it, trusting the server only by the host CA: no prompt"
"$cs" known-hosts >"$work/known_hosts"
cat "$work/known_hosts"
ssh -F /dev/null -i "$work/id_ed25519" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
  -o UserKnownHostsFile="$work/known_hosts" -o GlobalKnownHostsFile=/dev/null \
  -o BatchMode=yes -o LogLevel=ERROR -p "$port" "$login@127.0.0.1" \
  'echo "logged in as $(id -un) on $(hostname)"'

step "sshd's log line, and the audit trail its serial leads to"
grep "Accepted publickey" "$work/sshd.log" | tail -n 1
serial="$(grep -o '(serial [0-9]*)' "$work/sshd.log" | tail -n 1 | tr -dc 0-9)"
COUNTERSIGN_TOKEN="$bob_token" "$cs" audit explain "$(grep "Accepted publickey" "$work/sshd.log" | tail -n 1)"
echo
COUNTERSIGN_TOKEN="$bob_token" "$cs" audit --serial "$serial"

step "alice is done early: countersign done $id; the KRL now lists the serial"
COUNTERSIGN_TOKEN="$alice_token" "$cs" done "$id"
"$cs" krl --out "$work/revoked.krl"
ssh-keygen -Q -l -f "$work/revoked.krl"

step "3 a.m., nobody answers: alice breaks the glass (every notification sink would ring)"
bg_id="$(COUNTERSIGN_TOKEN="$alice_token" "$cs" breakglass prod-db --ttl 3h \
  --reason "INC-4212: primary down, no DBA answers" --key "$work/id_ed25519.pub")"
ssh-keygen -L -f "$work/id_ed25519-cert.pub" | grep -E 'Key ID|Valid'

step "nobody reviews their own break-glass; carol and erin (security) review it"
COUNTERSIGN_TOKEN="$alice_token" "$cs" review "$bg_id" --justified --comment "it was me" || true
COUNTERSIGN_TOKEN="$carol_token" "$cs" review "$bg_id" --justified \
  --comment "INC-4212 confirmed in the pager log"
COUNTERSIGN_TOKEN="$erin_token" "$cs" review "$bg_id" --justified --comment "agreed"
COUNTERSIGN_TOKEN="$bob_token" "$cs" report --breakglass

step "alice takes her throw-away key back: countersign keys remove"
COUNTERSIGN_TOKEN="$alice_token" "$cs" keys remove "$work/id_ed25519.pub"

step "countersign audit verify"
"$cs" audit verify

if [ -t 0 ]; then
  step "the CA is still running at $COUNTERSIGN_URL; press Ctrl-C to stop"
  echo "try: COUNTERSIGN_TOKEN=$bob_token $cs list"
  wait "$server_pid" || true
fi
