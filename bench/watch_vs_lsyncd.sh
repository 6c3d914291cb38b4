#!/usr/bin/env bash
# Watch mode against lsyncd (issue 14), one run, one tool at a time on the
# same tree and the same edits:
#
# - latency: the time from a file's close in the source to the same bytes
#   in the replica, over EDITS edits (default 200: one in four a new file,
#   the rest rewrites) of files picked at random (seed 1) over the whole
#   tree, 50 ms apart; the poll of the replica adds at most 0.2 ms. Median
#   and 99th percentile (nearest rank). Then the same again (STEADY
#   edits, default EDITS) with another file, in the tree's first folder,
#   appended a line every 10 ms all through them (a program writing its
#   log): `mode=steady`.
# - idle CPU: utime + stime of the watching process (/proc/PID/stat) over
#   IDLE seconds (default 60) with nothing changing, as % of one core.
# - VmRSS of the watching process once the edits are done.
# - foldersync only: the passes a burst of BURST (default 10,000) new files
#   in one new folder (in the tree's first folder) takes.
# - memory per watched folder: foldersync on a tree of FOLDERS (default
#   20,000) folders of one file each, once without --watch and once with
#   it: the VmRSS difference per folder; the kernel's part from the slab
#   caches inotify_inode_mark (80 bytes, merged into :A-0000080) and
#   fsnotify_mark_connector (24 bytes), objects before and after the watch
#   starts (other processes share those caches: a little noise).
#
# The tree (TREE):
# - small (default): the benchmark's small workload (FILES files, default
#   100,000, of 1 to 16 KiB in folders of 20; examples/bench.rs, seed 1);
#   about 3 GB in WORK.
# - huge: the shape of issue 14's huge workload (bench/huge_tree.py, as
#   bench/huge.sh makes it): FILES files, default 1,000,000, of 0 to 64
#   bytes, 20 a folder in groups of 1,000 folders (50,000 folders at full
#   size); about 13 GB and 3.2 million inodes in WORK, and a watch limit
#   (fs.inotify.max_user_watches) above the folder count.
# foldersync runs `--watch SRC DST 1h LOG` (so only the watch syncs);
# lsyncd runs `-nodaemon -delay 0 -rsync SRC DST`, its lowest setting.
# Each starts on an empty replica and copies the whole tree first
# (foldersync's first pass; lsyncd's startup rsync, minutes for a million
# files): the edits start once its log says that copy is done and the
# process (with its children) then used under 1% of a core for 5 s.
# Needs lsyncd (apt-get install -y lsyncd), rsync, python3; WORK (default
# /tmp/foldersync-watch-vs-lsyncd; KEEP=1 keeps the tree for the next
# run).
#
#   bench/watch_vs_lsyncd.sh
#   TREE=huge FILES=20000 bench/watch_vs_lsyncd.sh   # checks the huge mode
#   TREE=huge bench/watch_vs_lsyncd.sh               # issue 14's huge tree
set -euo pipefail
cd "$(dirname "$0")/.."
EDITS=${EDITS:-200}
STEADY=${STEADY:-$EDITS}
TREE=${TREE:-small}
case $TREE in
small) FILES=${FILES:-100000} ;;
huge) FILES=${FILES:-1000000} ;;
*) echo "TREE is small or huge, not $TREE" >&2; exit 1 ;;
esac
IDLE=${IDLE:-60}
BURST=${BURST:-10000}
FOLDERS=${FOLDERS:-20000}
W=${WORK:-/tmp/foldersync-watch-vs-lsyncd}
command -v lsyncd >/dev/null || { echo "needs lsyncd: apt-get install -y lsyncd" >&2; exit 1; }
command -v rsync >/dev/null || { echo "needs rsync: apt-get install -y rsync" >&2; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/foldersync
mkdir -p "$W"
if [ "$TREE" = small ]; then
    SRC=$W/gen/small/src
    if [ ! -d "$SRC" ]; then
        echo "generating $FILES files..."
        cargo run --release -q --example bench -- --generate-only --files "$FILES" \
            --workloads small --dir "$W/gen" >/dev/null
    fi
else
    SRC=$W/huge-$FILES/src
    if [ ! -d "$SRC" ]; then
        echo "generating $FILES files..."
        python3 bench/huge_tree.py "$SRC" $((FILES / 20))
    fi
fi
echo "tree: $(find "$SRC" -type f | wc -l) files in $(find "$SRC" -type d | wc -l) folders"

pid=
stop() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    fi
}
cleanup() {
    stop
    [ "${KEEP:-}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT

# Waits until FILE has a line matching PATTERN.
wait_line() {
    until grep -q "$2" "$1" 2>/dev/null; do sleep 0.1; done
}

# Waits until process PID has no child process (lsyncd's rsync) and used
# under 1% of a core (utime + stime, /proc/PID/stat) over the last 5 s.
wait_idle() {
    local before after started=$SECONDS
    cpu_of() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
    before=$(cpu_of "$1")
    while :; do
        sleep 5
        after=$(cpu_of "$1")
        if [ -z "$(pgrep -P "$1")" ] && [ $((after - before)) -le $(($(getconf CLK_TCK) * 5 / 100)) ]; then
            break
        fi
        before=$after
    done
    echo "idle after $((SECONDS - started)) s more"
}

measure() { # TOOL DST PID
    python3 - "$SRC" "$2" "$1" "$3" "$EDITS" "$IDLE" "$STEADY" <<'PY'
import os, random, sys, threading, time
src, dst, tool, pid, edits, idle, steady = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
files = sorted(os.path.relpath(os.path.join(d, f), src)
               for d, _, fs in os.walk(src) for f in fs
               if not os.path.islink(os.path.join(d, f)))
rng = random.Random(1)

def stream(mode, edits):
    lat = []
    for i in range(edits):
        rel = rng.choice(files)
        if i % 4 == 3:
            # Named for this run: a kept tree holds earlier runs' new files.
            rel = os.path.join(os.path.dirname(rel), f"new-{tool}-{mode}-{os.getpid()}-{i}.txt")
        body = f"{tool} edit {i} at {time.time()}\n".encode() * rng.randint(1, 100)
        with open(os.path.join(src, rel), "wb") as f:
            f.write(body)
        t0 = time.perf_counter()  # just after close
        while True:
            try:
                with open(os.path.join(dst, rel), "rb") as f:
                    if f.read() == body:
                        break
            except FileNotFoundError:
                pass
            if time.perf_counter() - t0 > 30:
                sys.exit(f"{tool}: edit {i} ({rel}) never reached the replica")
            time.sleep(0.0002)
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)
    lat.sort()
    median = lat[len(lat) // 2] if len(lat) % 2 else (lat[len(lat) // 2 - 1] + lat[len(lat) // 2]) / 2
    p99 = lat[max(0, -(-99 * len(lat) // 100) - 1)]
    over = sum(1 for l in lat if l > 100)
    print(f"RESULT tool={tool} mode={mode} edits={edits} median_ms={median:.1f} p99_ms={p99:.1f} worst_ms={lat[-1]:.1f} over_100ms={over}", flush=True)

stream("quiet", edits)
# Another file appended every 10 ms all through the edits.
stop = threading.Event()
def writer():
    top = sorted(e.path for e in os.scandir(src) if e.is_dir())[0]
    path = os.path.join(top, f"steady-{tool}-{os.getpid()}.log")
    n = 0
    while not stop.is_set():
        with open(path, "a") as f:
            f.write(f"line {n} at {time.time()}\n")
        n += 1
        time.sleep(0.01)
w = threading.Thread(target=writer)
w.start()
time.sleep(1)
try:
    stream("steady", steady)
finally:
    stop.set()
    w.join()

def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)

def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

time.sleep(2)
tick = os.sysconf("SC_CLK_TCK")
c0, t0 = cpu(), time.monotonic()
time.sleep(idle)
c1, t1 = cpu(), time.monotonic()
print(f"RESULT tool={tool} idle_s={t1 - t0:.0f} cpu_ticks={c1 - c0} idle_cpu_pct={100 * (c1 - c0) / tick / (t1 - t0):.3f} vmrss_kib={rss()}")
PY
}

echo "== foldersync --watch"
rm -rf "$W/dst-fs" "$W/fs.log"
"$BIN" --no-menu -q --watch "$SRC" "$W/dst-fs" 1h "$W/fs.log" </dev/null >/dev/null 2>&1 &
pid=$!
started=$SECONDS
wait_line "$W/fs.log" 'pass finished in'
echo "first pass done in $((SECONDS - started)) s; $(wait_idle "$pid")"
measure foldersync "$W/dst-fs" "$pid"
# In a folder below the top one, as before (the burst figures stay comparable).
BURST_DIR=$(find "$SRC" -mindepth 1 -maxdepth 1 -type d | sort | head -1)/burst
before=$(grep -c 'pass over ' "$W/fs.log" || true)
python3 -c "
import os, sys
d = sys.argv[1]; os.mkdir(d)
for i in range(int(sys.argv[2])):
    with open(os.path.join(d, f'f{i:05d}'), 'w') as f: f.write(str(i))
" "$BURST_DIR" "$BURST"
until [ "$(find "$W/dst-fs/${BURST_DIR#"$SRC"/}" -type f 2>/dev/null | wc -l)" -ge "$BURST" ]; do sleep 0.2; done
echo "RESULT tool=foldersync burst_files=$BURST passes=$(($(grep -c 'pass over ' "$W/fs.log") - before)) full_passes=$(grep -c 'pass finished in' "$W/fs.log")"
rm -rf "$BURST_DIR"
stop

echo "== lsyncd -delay 0 -rsync"
rm -rf "$W/dst-ls" "$W/ls.log"
mkdir -p "$W/dst-ls"
lsyncd -nodaemon -delay 0 -rsync "$SRC" "$W/dst-ls" </dev/null >"$W/ls.log" 2>&1 &
pid=$!
started=$SECONDS
wait_line "$W/ls.log" 'Startup of .* finished'
echo "startup rsync done in $((SECONDS - started)) s; $(wait_idle "$pid")"
measure lsyncd "$W/dst-ls" "$pid"
stop

echo "== memory per watched folder ($FOLDERS folders)"
F=$W/folders
rm -rf "$F" && mkdir -p "$F"
python3 -c "
import os, sys
for d in range(int(sys.argv[2])):
    p = os.path.join(sys.argv[1], 'src', f'd{d // 100:03d}', f'e{d % 100:02d}')
    os.makedirs(p)
    with open(os.path.join(p, 'f'), 'w') as f: f.write('x')
" "$F" "$FOLDERS"
folders=$(find "$F/src" -type d | wc -l)
slab() { # objects of a slab cache
    awk '{print $1}' "/sys/kernel/slab/$1/objects"
}
rss_of() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
for mode in plain watch; do
    rm -rf "$F/dst" "$F/log"
    marks=$(slab inotify_inode_mark) conns=$(slab fsnotify_mark_connector)
    flag=()
    [ $mode = watch ] && flag=(--watch)
    "$BIN" --no-menu -q "${flag[@]}" "$F/src" "$F/dst" 1h "$F/log" </dev/null >/dev/null 2>&1 &
    pid=$!
    wait_line "$F/log" 'pass finished in'
    sleep 1
    rss=$(rss_of "$pid")
    marks=$(($(slab inotify_inode_mark) - marks)) conns=$(($(slab fsnotify_mark_connector) - conns))
    kernel=$((marks * $(cat /sys/kernel/slab/inotify_inode_mark/object_size) + conns * $(cat /sys/kernel/slab/fsnotify_mark_connector/object_size)))
    echo "RESULT folders=$folders mode=$mode vmrss_kib=$rss inotify_inode_mark_objs=$marks fsnotify_mark_connector_objs=$conns kernel_bytes_per_folder=$((kernel / folders))"
    eval "rss_$mode=$rss"
    stop
done
echo "RESULT per_watched_folder_rss_bytes=$(((rss_watch - rss_plain) * 1024 / folders))"
