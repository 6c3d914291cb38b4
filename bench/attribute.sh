#!/bin/bash
# Where a `--once` pass spends its time, scenario by scenario, for each
# foldersync binary given: system calls counted by `strace -c -f`, user-space
# instructions counted by callgrind (repeatable on a loaded machine, unlike
# wall time), and the peak heap by massif (TOOLS=massif) or peak RSS (TOOLS=rss). Each binary gets a state folder of
# its own (XDG_STATE_HOME), kept from scenario to scenario as cron would.
#
#   DIR=/mnt/speed/attr FILES=20000 bench/attribute.sh OLD_BIN NEW_BIN...
#
# Scenarios, on the bench's small workload (`--generate-only`, seed 1):
# initial (a first sync, after an earlier first sync left its state),
# no-change, churn (1% modified, half keeping their size, 1% deleted, 1%
# added), touch (every source mtime moved by a day, the replica's put back).
# Writes DIR/out/<binary>.<scenario>.{strace,callgrind,annotate} and prints a
# summary line per run.
set -euo pipefail
DIR=${DIR:-/tmp/foldersync-attr}
FILES=${FILES:-20000}
TOOLS=${TOOLS:-strace callgrind}
SCENARIOS=${SCENARIOS:-initial no-change churn touch}
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH:-$here/target/release/examples/bench}
src=$DIR/small/src
dst=$DIR/small/dst
pristine=$DIR/small/pristine
out=$DIR/out
mkdir -p "$out"
if [ ! -d "$pristine" ]; then
    "$bench" --generate-only --workloads small --files "$FILES" --dir "$DIR" >/dev/null
fi

churn() { # deterministic 1% edits of $src
    python3 - "$src" <<'EOF'
import os, sys
root = sys.argv[1]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
               if not os.path.islink(os.path.join(d, f)))
for i, path in enumerate(files):
    k = i % 100
    if k == 0:
        size = os.path.getsize(path)
        data = bytes((i + j) % 251 for j in range(size))
        if (i // 100) % 2:
            data += b"more"
        with open(path, "wb") as f:
            f.write(data)
    elif k == 1:
        os.unlink(path)
    elif k == 2:
        with open(path + ".new", "wb") as f:
            f.write(bytes(range(256)) * 16)
EOF
}

shift_mtimes() { # every source file's mtime a day later
    find "$src" -type f -print0 | python3 -c '
import os, sys
for p in sys.stdin.buffer.read().split(b"\0"):
    if p:
        st = os.stat(p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 86400 * 10**9))'
}

# Only what differs is rewritten (the bench's trees have atimes in the
# future, so its `rsync -aU` reset leaves the other replica files alone too:
# a moved replica ctime makes a stored entry stale and its file is read).
mirror() { rsync -a --delete "$pristine/" "$dst/"; }

setup() { # $1 scenario: bring the replica to where it starts
    case $1 in
        initial) rm -rf "$dst" ;;
        no-change) ;;
        churn | touch) mirror ;;
    esac
    sync
}

run() { # $1 binary, $2 scenario, $3 how
    local bin=$1 name label
    case " $SCENARIOS " in *" $2 "*) ;; *) [ "$3" = plain ] || return 0 ;; esac
    label=$(basename "$bin")
    name=$out/$label.$2
    setup "$2"
    case $3 in
        plain) "$bin" --once "$src" "$dst" 1 /dev/shm/attr.log 2>/dev/shm/attr.stderr ;;
        strace)
            strace -c -f -o "$name.strace" "$bin" --once "$src" "$dst" 1 /dev/shm/attr.log 2>/dev/shm/attr.stderr
            echo "$label $2 strace: $(awk '/ total$/{print $4, "calls"}' "$name.strace")"
            ;;
        callgrind)
            valgrind --tool=callgrind --callgrind-out-file="$name.callgrind" --log-file="$name.valgrind" \
                "$bin" --once "$src" "$dst" 1 /dev/shm/attr.log 2>/dev/shm/attr.stderr
            callgrind_annotate --inclusive=yes "$name.callgrind" >"$name.annotate" 2>/dev/null || true
            echo "$label $2 callgrind: $(awk '/Collected :/{print $NF}' "$name.valgrind") instructions"
            ;;
        fsync)
            strace -f --seccomp-bpf -e trace=fsync,fdatasync -c -o "$name.fsync" "$bin" --once "$src" "$dst" 1 /dev/shm/attr.log 2>/dev/shm/attr.stderr
            echo "$label $2 fsync: $(awk '/ total$/{print $4, "calls,", $2, "s"}' "$name.fsync")"
            ;;
        rss)
            /usr/bin/time -f %M -o "$name.rss" "$bin" --once "$src" "$dst" 1 /dev/shm/attr.log 2>/dev/shm/attr.stderr
            echo "$label $2 rss: $(cat "$name.rss") KiB peak"
            ;;
        massif)
            valgrind --tool=massif --massif-out-file="$name.massif" --log-file="$name.valgrind" \
                "$bin" --once "$src" "$dst" 1 /dev/shm/attr.log 2>/dev/shm/attr.stderr
            echo "$label $2 massif: peak heap $(ms_print "$name.massif" | awk '/^ *[0-9]+ +[0-9,]+ +[0-9,]+ +[0-9,]+/{gsub(",","",$3); if ($3>m) m=$3} END{print m}') bytes"
            ;;
    esac
}

for bin in "$@"; do
    export XDG_STATE_HOME=$DIR/state-$(basename "$bin")
    rm -rf "$XDG_STATE_HOME"
    rsync -a --delete "$pristine/" "$src/"
    # A first sync before the measured ones, as in the bench's second rep.
    run "$bin" initial plain
    for how in $TOOLS; do run "$bin" initial "$how"; done
    for how in plain $TOOLS; do run "$bin" no-change "$how"; done
    churn
    for how in $TOOLS; do run "$bin" churn "$how"; done
    rsync -a --delete "$pristine/" "$src/"
    shift_mtimes
    for how in $TOOLS; do run "$bin" touch "$how"; done
    rsync -a --delete "$pristine/" "$src/"
done
