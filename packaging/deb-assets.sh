#!/bin/sh
# Builds the release binary and the files `cargo deb --no-build` packages
# (see docs/service.md, Packaging): the man page and completions, which the
# binary generates, and the systemd unit with the packaged binary's path.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked
out=target/assets
mkdir -p "$out"
bin=target/release/foldersync
"$bin" --generate man | gzip -9n > "$out/foldersync.1.gz"
"$bin" --generate complete-bash > "$out/foldersync.bash"
"$bin" --generate complete-zsh > "$out/_foldersync"
"$bin" --generate complete-fish > "$out/foldersync.fish"
sed 's|/usr/local/bin/foldersync|/usr/bin/foldersync|' examples/foldersync@.service \
    > "$out/foldersync@.service"
echo "assets in $out; now: cargo deb --no-build"
