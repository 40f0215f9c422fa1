#!/usr/bin/env bash
# The Debian package, built and installed for real: scripts/build-deb.sh --debug builds
# it from the dev build `cargo test` already made, dpkg installs it on this machine (CI
# runs as root on a throw-away machine; run as another user, the script refuses), the
# checks below look at what it installed and run the unit's own command lines as its
# user, then the package is purged. The service user and /var/lib/countersign, which a
# purge keeps on purpose (the CA key), are removed afterwards if this script made them.
# Called by scripts/test.sh; ends with "package: N passed, 0 failed".
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "$0: installs a package with dpkg: run it as root (skipped)" >&2
  exit 0
fi
# Never on a host that has countersign for real: the test purges the package and would
# run its checks against that data folder. What a run of this script killed half-way
# (SIGKILL) left behind is refused the same: on a throw-away machine,
# COUNTERSIGN_PACKAGE_TEST=yes says to go on anyway.
if [ "${COUNTERSIGN_PACKAGE_TEST:-}" != "yes" ] &&
  { dpkg-query -W -f='${Status}' countersign 2>/dev/null | grep -q ' installed' ||
    [ -e /var/lib/countersign ] || [ -e /etc/countersign ]; }; then
  echo "$0: countersign is installed here, or /var/lib/countersign or /etc/countersign" \
    "exists: not touching them (COUNTERSIGN_PACKAGE_TEST=yes overrides, on a throw-away" \
    "machine only)" >&2
  exit 1
fi
started=$SECONDS
passed=0
ok() {
  passed=$((passed + 1))
  echo "ok: $*" >&2
}
fail() {
  echo "FAILED: $*" >&2
  echo "package: $passed passed, 1 failed"
  exit 1
}

unit=/usr/lib/systemd/system/countersign.service
examples=/usr/share/doc/countersign/examples/systemd
data=/var/lib/countersign
tmp=$(mktemp -d)
# A run that was stopped half-way left the package installed: start from a clean slate.
if dpkg-query -W -f='${Status}' countersign 2>/dev/null | grep -q ' installed'; then
  dpkg --purge countersign >/dev/null
fi
made_user=yes made_data=yes
getent passwd countersign >/dev/null && made_user=no
[ -e "$data" ] && made_data=no
cleanup() {
  dpkg --purge countersign >/dev/null 2>&1 || true
  if [ "$made_data" = yes ]; then rm -rf "$data"; fi
  if [ "$made_user" = yes ] && getent passwd countersign >/dev/null; then
    deluser --system --quiet countersign >/dev/null 2>&1 || true
    delgroup --system --quiet countersign >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

deb=$(scripts/build-deb.sh --debug --fast)
built=$(dirname "$(dirname "$deb")")/deb-ci/countersign
echo "built $deb in $((SECONDS - started)) s" >&2
dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i $deb"; }
ok "dpkg -i installs the package"

version=$(/usr/bin/countersign --version)
[[ "$version" =~ ^countersign\ [0-9]+\.[0-9]+\.[0-9]+\ \(([0-9a-f]{12,}|unknown)\)$ ]] \
  && [ "$version" = "$("$built" --version)" ] || fail "/usr/bin/countersign --version: $version"
ok "/usr/bin/countersign --version prints \"$version\""

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd countersign) || fail "no user countersign"
[ "$uid" -lt 1000 ] && [ "$home" = "$data" ] && [ "$shell" = /usr/sbin/nologin ] \
  && getent group countersign >/dev/null || fail "user countersign: uid $uid, $home, $shell"
ok "a system user countersign (uid $uid) with group countersign"
[ "$(stat -c '%U:%G %a' "$data")" = "countersign:countersign 700" ] \
  || fail "$data is $(stat -c '%U:%G %a' "$data")"
ok "$data belongs to countersign, mode 700"
dpkg-query -W -f='${Conffiles}' countersign | grep -q '^ /etc/countersign/countersign.toml ' \
  || fail "/etc/countersign/countersign.toml is not a conffile"
ok "/etc/countersign/countersign.toml is a conffile"

# verify exits 0 on unknown keys, with a warning: any output is a failure.
for units in "$unit" "$examples/countersign-krl-sync.timer $examples/countersign-krl-sync.service" \
  "$examples/countersign-host-renew.timer $examples/countersign-host-renew.service"; do
  # shellcheck disable=SC2086 # two units in one word on purpose
  out=$(systemd-analyze verify $units 2>&1) && [ -z "$out" ] || fail "systemd-analyze verify $units: $out"
  ok "systemd-analyze verify $units"
done

for page in countersign countersign-serve countersign-token-create; do
  [ "$(man -w "$page")" = "/usr/share/man/man1/$page.1.gz" ] || fail "man -w $page"
done
MANWIDTH=100 man -P cat countersign-serve 2>"$tmp/man.err" | grep -q -- '--accept-rollback' \
  && [ ! -s "$tmp/man.err" ] || fail "man countersign-serve: $(cat "$tmp/man.err")"
ok "man countersign-serve shows its options (and $(ls /usr/share/man/man1/countersign*.1.gz | wc -l) pages in all)"
for f in /usr/share/bash-completion/completions/countersign /usr/share/zsh/vendor-completions/_countersign \
  /usr/share/fish/vendor_completions.d/countersign.fish; do
  [ -s "$f" ] || fail "$f missing"
done
ok "completions for bash, zsh and fish"

# The unit's ExecStart= and ExecReload= as its User=, on the packaged config and data
# folder (not in systemd's sandbox: this machine's PID 1 is not systemd), in a network
# namespace of its own, so that the config's 127.0.0.1:7070 is free.
start=$(sed -n 's/^ExecStart=//p' "$unit")
reload=$(sed -n 's/^ExecReload=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
cat >"$tmp/run-unit.sh" <<EOF
set -euo pipefail
ip link set lo up
health() {
  exec 3<>/dev/tcp/127.0.0.1/7070 && printf 'GET /v1/health HTTP/1.0\r\n\r\n' >&3 && head -1 <&3
}
setpriv --reuid=$user --regid=$user --init-groups -- $start >"$tmp/serve.log" 2>&1 &
pid=\$!
trap 'kill \$pid 2>/dev/null || true' EXIT
for _ in \$(seq 150); do health 2>/dev/null | grep -q ' 200 ' && break; sleep 0.2; done
health | grep -q ' 200 '
setpriv --reuid=$user --regid=$user --init-groups -- $reload
for _ in \$(seq 50); do grep -q 'configuration reloaded' "$tmp/serve.log" && break; sleep 0.2; done
grep -q 'configuration reloaded' "$tmp/serve.log"
kill -TERM \$pid
wait \$pid
EOF
unshare --net bash "$tmp/run-unit.sh" || { cat "$tmp/serve.log" >&2; fail "the unit's commands as $user"; }
[ "$(stat -c '%U %a' "$data/ca_key")" = "countersign 600" ] || fail "$data/ca_key"
ok "as $user, ExecStart= serves (first start: CA key in $data), ExecReload= reloads, SIGTERM stops"

key=$(sha256sum "$data/ca_key")
dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i again"; }
[ "$(id -u countersign)" = "$uid" ] && [ "$(sha256sum "$data/ca_key")" = "$key" ] \
  && [ "$(stat -c '%U:%G %a' "$data")" = "countersign:countersign 700" ] || fail "reinstall changed things"
ok "installing again keeps the user, the data folder and the CA key"

dpkg --purge countersign >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg --purge"; }
for f in /usr/bin/countersign "$unit" /etc/countersign/countersign.toml \
  /usr/share/man/man1/countersign.1.gz; do
  [ ! -e "$f" ] || fail "$f is still there after the purge"
done
[ -f "$data/ca_key" ] && getent passwd countersign >/dev/null || fail "the purge took the CA's data"
ok "dpkg --purge removes the package's files and keeps $data and the user"

echo "package test took $((SECONDS - started)) s" >&2
echo "package: $passed passed, 0 failed"
