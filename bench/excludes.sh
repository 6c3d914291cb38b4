#!/usr/bin/env bash
# Issue 10's benchmark: a no-change `--once` pass over a tree whose
# node_modules-like folder is excluded, against rsync with the same
# --exclude and against foldersync on the same tree without that folder.
#
# Usage: bench/excludes.sh [DIR]    (default /tmp/foldersync-bench-excludes)
# Environment: KEPT (files kept, default 20000), EXCLUDED (files in
# node_modules, default 50000), REPS (timed runs each, median taken,
# default 11). Needs rsync and python3; builds target/release/foldersync.
set -euo pipefail

DIR=${1:-/tmp/foldersync-bench-excludes}
KEPT=${KEPT:-20000}
EXCLUDED=${EXCLUDED:-50000}
REPS=${REPS:-11}
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/foldersync

rm -rf "$DIR"
mkdir -p "$DIR"
# 200 files a folder; ~1 KiB each; the same content from run to run.
python3 - "$DIR" "$KEPT" "$EXCLUDED" <<'PY'
import os, sys
root, kept, excluded = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def tree(base, n, per=200):
    for i in range(n):
        d = os.path.join(base, f"d{i // per:04}")
        if i % per == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06}.txt"), "wb") as f:
            f.write((f"{i}\n" * 200).encode()[:1000])
for side in ("full", "lean"):
    tree(os.path.join(root, side, "src", "project"), kept)
tree(os.path.join(root, "full", "src", "node_modules"), excluded)
PY

cd "$DIR"
EX=(--exclude node_modules/)
# First passes (untimed): every replica made once.
"$BIN" --once -q "${EX[@]}" full/src full/fs 1 fs.log
rsync -a --delete "${EX[@]}" full/src/ full/rs/
"$BIN" --once -q lean/src lean/fs 1 lean.log
"$BIN" --once -q full/src full/all 1 all.log

# Median (and min) wall time in ms of REPS runs of the command.
median_ms() {
    local times=()
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f | %.1f", a[int((NR+1)/2)]/1000, a[1]/1000}'
}

echo "# $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); $KEPT kept files, $EXCLUDED in node_modules/; median of $REPS no-change passes"
printf '| tool | tree | command | median wall (ms) | min (ms) |\n|---|---|---|---:|---:|\n'
printf '| foldersync | %s kept + %s excluded | `foldersync --once --exclude node_modules/` | %s |\n' "$KEPT" "$EXCLUDED" \
    "$(median_ms "$BIN" --once -q "${EX[@]}" full/src full/fs 1 fs.log)"
printf '| rsync | %s kept + %s excluded | `rsync -a --delete --exclude node_modules/` | %s |\n' "$KEPT" "$EXCLUDED" \
    "$(median_ms rsync -a --delete "${EX[@]}" full/src/ full/rs/)"
printf '| foldersync | %s kept, no node_modules | `foldersync --once` | %s |\n' "$KEPT" \
    "$(median_ms "$BIN" --once -q lean/src lean/fs 1 lean.log)"
printf '| foldersync | %s kept + %s, nothing excluded | `foldersync --once` | %s |\n' "$KEPT" "$EXCLUDED" \
    "$(median_ms "$BIN" --once -q full/src full/all 1 all.log)"
cd / && rm -rf "$DIR"
