#!/usr/bin/env bash
# Stress run of foldersync, one command:
#
#     bench/stress.sh                 # release build (the numbers that matter)
#     PROFILE=debug bench/stress.sh   # debug build, no extra compile
#
# 16 pairs syncing every 0.05-0.2 s while the menu stops one pair and adds
# one back 200 times and a thread keeps rewriting source files. Fails on a
# panic, a menu answer slower than 5 s (deadlock), VmRSS rising more than
# 16 MiB above its value after a 50-cycle warm-up, a replica that is not a
# mirror at the end, or "3. Quit safely" taking a second or more. Prints
# the measured numbers. The test itself is tests/stress.rs (#[ignore]d,
# so plain `cargo test` skips it); it needs no root and no network.
set -euo pipefail
cd "$(dirname "$0")/.."

flags=(--release)
if [ "${PROFILE:-release}" = debug ]; then
    flags=()
fi
exec cargo test "${flags[@]}" --test stress -- --ignored --nocapture --test-threads=1
