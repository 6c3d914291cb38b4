#!/usr/bin/env bash
# The `huge` workload of issue 14: 1,000,000 files of 0 to 64 bytes in
# 50,000 folders (50 folders of 1,000 folders of 20 files), on a fresh ext4
# image mounted through a loop device, so every run starts from the same
# allocator and page-cache state. Opt-in: generating it takes minutes.
#
# Measured, side by side with `rsync -a --delete SRC/ DST/`:
# - the first sync (one run each, foldersync `--once` first);
# - the no-change pass, REPS times interleaved: foldersync `--once` and
#   rsync, each a fresh process, and the floor of any such pass: two
#   `find -printf '%s %T@ %m'` at once, one per tree (every entry stat-ed,
#   nothing compared);
# - peak RSS of each of those (`/usr/bin/time -v`, "Maximum resident set
#   size": for rsync, its largest process);
# - a daemon (`--no-menu -v SRC DST 2 LOG`) that makes the replica itself
#   (so its cache holds a digest of every file, as a daemon's does) and then
#   runs DAEMON_PASSES no-change passes with its cache: the passes' times
#   from its log, its RSS after them (VmRSS) and its peak (VmHWM), and the
#   cache's own count of its bytes (the "cache holds" line logged at stop);
# - the same daemon with `--watch`, plus the kernel's inotify marks
#   (/proc/slabinfo) while it runs;
# - the daemons' baseline: the same command on an empty source.
# With BEFORE=/path/to/an/older/foldersync, the daemon run is repeated with
# that binary (its cache's bytes, for a before/after).
#
#   bench/huge.sh                      # about 20 minutes on 2 cores
#   FOLDERS=500 REPS=1 bench/huge.sh   # 10,000 files: checks the script
#
# Needs root (mkfs, mount), rsync, GNU time, python3; about 16 GiB free
# under IMG's folder (the image is sparse; three trees of 4 KiB blocks).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/target/release/foldersync}
BEFORE=${BEFORE:-}
FOLDERS=${FOLDERS:-50000}
REPS=${REPS:-3}
DAEMON_PASSES=${DAEMON_PASSES:-3}
IMG=${IMG:-/var/tmp/foldersync-huge.img}
MNT=${MNT:-/mnt/foldersync-huge}
SHM=$(mktemp -d /dev/shm/foldersync-huge.XXXXXX)
FILES=$((FOLDERS * 20))

cleanup() {
    [ -n "${daemon:-}" ] && kill -TERM "$daemon" 2>/dev/null || true
    umount "$MNT" 2>/dev/null || true
    rm -f "$IMG"
    rm -rf "$SHM"
}
trap cleanup EXIT

say() { echo "$*"; }

# A fresh file system: default ext4 (journal included), with inodes for
# the source, two replicas and the folders.
rm -f "$IMG"
truncate -s $((FILES * 16 / 1000000 + 2))G "$IMG"
mkfs.ext4 -q -F -N $((FILES * 3 + FOLDERS * 4 + 10000)) "$IMG"
mkdir -p "$MNT"
mount -o loop "$IMG" "$MNT"
say "# huge: $FILES files of 0 to 64 bytes in $FOLDERS folders; reps=$REPS"
say "# machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "# file system: fresh ext4 image on a loop device, $(findmnt -no OPTIONS "$MNT")"
say "# versions: $(rsync --version | head -1); foldersync $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes')"

started=$SECONDS
python3 bench/huge_tree.py "$MNT/src" "$FOLDERS"
sync
say "# generated in $((SECONDS - started)) s"

# `timed NAME CMD...`: runs CMD under GNU time; prints wall (s) and peak
# RSS (KiB), and appends them to $SHM/NAME.
timed() {
    local name=$1
    shift
    /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" >/dev/null 2>"$SHM/stderr" \
        || { echo "# $name exited non-zero: $(tail -3 "$SHM/stderr")"; }
    read -r wall rss < <(tail -1 "$SHM/time")
    echo "$wall $rss" >>"$SHM/$name"
    say "RESULT $name wall_s=$wall peak_rss_kb=$rss"
}

fs_once() { timed "$1" "$BIN" --once -q --state-dir "$SHM/state" "$MNT/src" "$MNT/dst-fs" 60 "$SHM/once.log"; }
rsync_run() { timed "$1" rsync -a --delete "$MNT/src/" "$MNT/dst-rsync/"; }
# The floor of any no-change pass that looks at every entry: both trees
# walked and every entry stat-ed (find's %s and %T need a stat each), the
# two walks at once, nothing compared.
floor_run() {
    timed "$1" bash -c 'find "$1" -printf "%s %T@ %m\n" >/dev/null &
        find "$2" -printf "%s %T@ %m\n" >/dev/null; wait' _ "$MNT/src" "$MNT/dst-fs"
}

sync
fs_once first-foldersync
sync
rsync_run first-rsync
sync
diff -r "$MNT/src" "$MNT/dst-fs" >/dev/null && diff -r "$MNT/src" "$MNT/dst-rsync" >/dev/null \
    || say "# WARNING: a replica differs from the source"
for r in $(seq "$REPS"); do
    if [ $((r % 2)) = 1 ]; then
        fs_once nochange-foldersync
        rsync_run nochange-rsync
    else
        rsync_run nochange-rsync
        fs_once nochange-foldersync
    fi
    floor_run nochange-floor
done

# Bytes of the kernel's inotify marks (one a watched folder), from the
# slab cache they share with other 80-byte objects: a delta is approximate.
marks() {
    local slab=/sys/kernel/slab/inotify_inode_mark
    echo $(($(cut -d' ' -f1 $slab/objects 2>/dev/null || echo 0) * $(cat $slab/object_size 2>/dev/null || echo 0)))
}

# `daemon NAME BIN SRC DST [OPTIONS...]`: starts a daemon, waits for its
# first pass and DAEMON_PASSES more (for an empty source, the first only),
# then reads its memory, stops it and reads its cache line.
daemon() {
    local name=$1 bin=$2 src=$3 dst=$4 passes=$DAEMON_PASSES
    shift 4
    [ -z "$(ls -A "$src")" ] && passes=0
    rm -f "$SHM/daemon.log"
    local slab_before
    slab_before=$(marks)
    "$bin" --no-menu -v --state-dir "$SHM/state-$name" "$@" "$src" "$dst" 2 "$SHM/daemon.log" \
        >/dev/null 2>&1 &
    daemon=$!
    until [ "$(cat "$SHM/daemon.log" 2>/dev/null | grep -c 'pass finished in')" -gt "$passes" ]; do
        kill -0 "$daemon" || { say "# $name: daemon died"; tail "$SHM/daemon.log"; exit 1; }
        sleep 0.2
    done
    local rss hwm slab
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$daemon/status")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$daemon/status")
    slab=$(marks)
    kill -TERM "$daemon"
    wait "$daemon" || true
    daemon=
    local first rest cache
    first=$(grep -m1 'pass finished in' "$SHM/daemon.log" | sed 's/.*finished in \([0-9.]*\) s.*/\1/')
    rest=$(grep 'pass finished in' "$SHM/daemon.log" | sed -n "2,$((passes + 1))p" \
        | sed 's/.*finished in \([0-9.]*\) s.*/\1/' | tr '\n' ' ')
    cache=$(grep 'cache holds' "$SHM/daemon.log" | tail -1 | sed 's/.*cache holds //')
    echo "$rss" >"$SHM/rss-$name"
    echo "$cache" | awk '{print $4}' >"$SHM/cache-$name"
    say "RESULT $name first_pass_s=$first nochange_passes_s=[ ${rest}] rss_kb=$rss peak_rss_kb=$hwm kernel_inotify_marks_bytes~$((slab - slab_before)) cache: $cache"
}

mkdir -p "$SHM/empty"
daemon daemon-baseline "$BIN" "$SHM/empty" "$SHM/empty-dst"
daemon daemon-watch-baseline "$BIN" "$SHM/empty" "$SHM/empty-dst" --watch
rm -rf "$MNT/dst-fs"
sync
daemon daemon "$BIN" "$MNT/src" "$MNT/dst-fs"
rm -rf "$MNT/dst-fs"
sync
daemon daemon-watch "$BIN" "$MNT/src" "$MNT/dst-fs" --watch
if [ -n "$BEFORE" ]; then
    daemon daemon-before-baseline "$BEFORE" "$SHM/empty" "$SHM/empty-dst"
    rm -rf "$MNT/dst-fs"
    sync
    daemon daemon-before "$BEFORE" "$MNT/src" "$MNT/dst-fs"
fi

# `med NAME COLUMN`: the median of one column of NAME's runs.
med() { awk -v c="$2" '{print $c}' "$SHM/$1" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
say
say "| measure | foldersync | rsync | foldersync ÷ rsync |"
say "|---|---:|---:|---:|"
for what in first nochange; do
    f=$(med "$what-foldersync" 1) r=$(med "$what-rsync" 1)
    say "| $what: wall (s, median of $(wc -l <"$SHM/$what-foldersync")) | $f | $r | $(awk -v f="$f" -v r="$r" 'BEGIN {printf "%.3f", f / r}') |"
    f=$(med "$what-foldersync" 2) r=$(med "$what-rsync" 2)
    say "| $what: peak RSS (KiB) | $f | $r | $(awk -v f="$f" -v r="$r" 'BEGIN {printf "%.3f", f / r}') |"
    say "| $what: peak RSS per file (bytes) | $((f * 1024 / FILES)) | $((r * 1024 / FILES)) | |"
done
say
say "| daemon | cache (bytes a file) | RSS above its baseline after the passes (bytes a file) |"
say "|---|---:|---:|"
for name in daemon daemon-watch ${BEFORE:+daemon-before}; do
    base=$(cat "$SHM/rss-$name-baseline")
    say "| $name | $(awk -v b="$(cat "$SHM/cache-$name")" -v n="$FILES" 'BEGIN {printf "%.1f", b / n}') | $(awk -v r="$(cat "$SHM/rss-$name")" -v b="$base" -v n="$FILES" 'BEGIN {printf "%.1f", (r - b) * 1024 / n}') |"
done
say "# total time $((SECONDS - started)) s; load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
