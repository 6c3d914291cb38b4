#!/usr/bin/env bash
# Watch mode's latency (issue 14): the time from a file's close in a
# watched source to the same content in the replica, over EDITS edits
# (default 50) spread over a small tree (20 folders of 50 files), with a
# 1 h interval so only the watch syncs. Each edit rewrites one file and
# polls the replica every 0.2 ms; the poll adds at most that much. Prints
# the median and the worst, in ms.
#
#   bench/watch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EDITS=${EDITS:-50}
WORK=${WORK:-/tmp/foldersync-watch-bench}
BIN=$PWD/target/release/foldersync
cargo build --release --quiet
rm -rf "$WORK" && mkdir -p "$WORK/src"
for d in $(seq -w 0 19); do
    mkdir -p "$WORK/src/d$d"
    for f in $(seq -w 0 49); do echo "file $d/$f" > "$WORK/src/d$d/f$f.txt"; done
done
"$BIN" --no-menu --watch "$WORK/src" "$WORK/dst" 1h "$WORK/log.txt" 2>/dev/null &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true' EXIT
until grep -q 'pass finished in' "$WORK/log.txt" 2>/dev/null; do sleep 0.1; done
python3 - "$WORK" "$EDITS" <<'PY'
import os, statistics, sys, time
work, edits = sys.argv[1], int(sys.argv[2])
lat = []
for i in range(edits):
    rel = f"d{i % 20:02d}/f{(i * 7) % 50:02d}.txt"
    body = f"edit {i} at {time.time()}\n".encode()
    with open(f"{work}/src/{rel}", "wb") as f:
        f.write(body)
    t0 = time.perf_counter()  # just after close
    while True:
        try:
            with open(f"{work}/dst/{rel}", "rb") as f:
                if f.read() == body:
                    break
        except FileNotFoundError:
            pass
        if time.perf_counter() - t0 > 10:
            sys.exit(f"edit {i} never reached the replica")
        time.sleep(0.0002)
    lat.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.05)
lat.sort()
print(f"{edits} edits: median {statistics.median(lat):.1f} ms, worst {lat[-1]:.1f} ms")
PY
echo "full passes: $(grep -c 'pass finished in' "$WORK/log.txt"), subtree passes: $(grep -c 'pass over ' "$WORK/log.txt")"
