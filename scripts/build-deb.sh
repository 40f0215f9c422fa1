#!/usr/bin/env bash
# Builds the Debian package and prints its path: the binary, then the man pages and
# shell completions it writes from its own clap definitions into the build's folder
# (assets of the package, see [package.metadata.deb] in Cargo.toml), then
# `cargo deb --no-build`. Installs cargo-deb when missing.
#
#   scripts/build-deb.sh          release build: the package to ship
#   scripts/build-deb.sh --debug  the dev build instead (seconds after `cargo test`, where
#                                 a release build takes many minutes on 2 cores); what
#                                 scripts/test-package.sh installs
#
# Other arguments go to cargo deb (e.g. --output DIR, --deb-revision N).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-cargo-deb.sh

target_dir=$(cargo metadata --locked --no-deps --format-version 1 \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ "${1:-}" = "--debug" ]; then
  shift
  cargo build --locked --bin countersign >&2
  # cargo-deb packs a profile's folder and takes no dev profile: the dev binary, stripped
  # of its debug info, goes into the folder of the `deb-ci` profile (inherits = "dev").
  profile=deb-ci
  mkdir -p "$target_dir/$profile"
  objcopy --strip-debug "$target_dir/debug/countersign" "$target_dir/$profile/countersign"
else
  profile=release
  cargo build --locked --release --bin countersign >&2
fi
out="$target_dir/$profile"

rm -rf "$out/man" "$out/completions"
mkdir -p "$out/completions"
"$out/countersign" man --out "$out/man" >/dev/null
gzip -9n "$out"/man/*.1 # as Debian ships man pages (-n: no time stamp, same bytes each time)
"$out/countersign" completions bash >"$out/completions/countersign.bash"
"$out/countersign" completions zsh >"$out/completions/_countersign"
"$out/countersign" completions fish >"$out/completions/countersign.fish"

# cargo deb prints the path of the package it wrote.
cargo deb --no-build --profile "$profile" --output "$target_dir/debian/" "$@"
