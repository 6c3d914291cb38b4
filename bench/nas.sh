#!/usr/bin/env bash
# foldersync --once against rsync -a --delete onto a real network share: an
# sshfs mount of a folder served by a local sshd on 127.0.0.1 (throw-away
# keys, as in tests/nas.rs). Times a first pass onto an empty replica and
# a no-change pass right after it, for each tool, interleaved, REPS times;
# then the same for foldersync with each --jobs in JOBS. Prints one RESULT
# line per run and a Markdown table of medians.
#
#   bench/nas.sh                        # 5,000 files, 3 reps, --jobs 2 4 8 16
#   FILES=2000 REPS=5 bench/nas.sh
#   BEFORE=/path/to/old/foldersync bench/nas.sh   # adds that binary's runs
#
# Needs root (sshd's privilege separation), sshd, sshfs, rsync and
# /dev/fuse (Debian: apt-get install -y openssh-server sshfs rsync).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-5000}
REPS=${REPS:-3}
JOBS=${JOBS:-"2 4 8 16"}
BEFORE=${BEFORE:-}

for tool in sshd sshfs rsync ssh-keygen; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
        { echo "bench/nas.sh: $tool is missing" >&2; exit 2; }
done

cargo build --release -q
BIN=$PWD/target/release/foldersync
W=$(mktemp -d /tmp/foldersync-nas-bench.XXXXXX)
SSHD_PID=
SSHFS_PID=
cleanup() {
    if [ -n "$SSHFS_PID" ]; then
        fusermount -u "$W/mnt" 2>/dev/null || umount -l "$W/mnt" 2>/dev/null || true
        wait "$SSHFS_PID" 2>/dev/null || true
    fi
    if [ -n "$SSHD_PID" ]; then
        kill "$SSHD_PID" 2>/dev/null || true
        wait "$SSHD_PID" 2>/dev/null || true
    fi
    rm -rf "$W"
}
trap cleanup EXIT

# The tree: the benchmark's small workload (1 to 16 KiB files, one folder
# per 20 files, one symlink per 200, sub-second mtimes), from seed 1.
cargo run --release -q --example bench -- --generate-only --files "$FILES" \
    --workloads small --dir "$W/gen" >/dev/null
SRC=$W/gen/small/src

# The share.
mkdir -p "$W/server" "$W/mnt" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$W/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$W/client_key"
cp "$W/client_key.pub" "$W/authorized_keys"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$W/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $PORT
HostKey $W/host_key
AuthorizedKeysFile $W/authorized_keys
PidFile none
PermitRootLogin yes
StrictModes no
UsePAM no
PasswordAuthentication no
Subsystem sftp internal-sftp
EOF
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
"$SSHD" -D -e -f "$W/sshd_config" 2>"$W/sshd.log" &
SSHD_PID=$!
for _ in $(seq 100); do grep -q "Server listening" "$W/sshd.log" && break; sleep 0.05; done
mount_share() {
    sshfs -f -o "IdentityFile=$W/client_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,port=$PORT,BatchMode=yes,LogLevel=ERROR" \
        "$(id -un)@127.0.0.1:$W/server" "$W/mnt" >>"$W/sshfs.log" 2>&1 &
    SSHFS_PID=$!
    for _ in $(seq 200); do
        [ "$(stat -f -c %T "$W/mnt")" = fuseblk ] && return
        sleep 0.05
    done
    echo "bench/nas.sh: sshfs did not mount" >&2
    exit 1
}
# Unmounted and mounted again: sshfs's and the kernel's caches of the
# share are gone, as for a cron job that runs long after the last one.
remount_share() {
    fusermount -u "$W/mnt"
    wait "$SSHFS_PID" 2>/dev/null || true
    mount_share
}
mount_share

echo "# nas bench: $FILES files ($(du -sm "$SRC" | cut -f1) MiB, $(find "$SRC" -type d | wc -l) folders, $(find "$SRC" -type l | wc -l) symlinks), reps=$REPS"
echo "# machine: $(nproc) cores, $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# versions: $(sshfs --version 2>&1 | grep -i "sshfs version" | head -1); $(rsync --version | head -1); foldersync $(git rev-parse --short HEAD)"

# Times one command in seconds; prints "seconds exit-status".
timed() {
    local t0 t1 rc=0
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || rc=$?
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" -v rc="$rc" 'BEGIN { printf "%.3f %d\n", (b - a) / 1e9, rc }'
}

# One tool's first pass onto an empty replica, then a no-change pass
# (sshfs's caches warm from the first), then another one after a remount
# (cold caches: every stat a round trip to the server).
run_pair() { # label rep command...
    local label=$1 rep=$2 dst=$3
    shift 3
    rm -rf "$W/server/$dst"
    sync
    read -r t rc < <(timed "$@")
    result "tool=$label scenario=first rep=$rep wall_s=$t exit=$rc"
    read -r t rc < <(timed "$@")
    result "tool=$label scenario=no-change rep=$rep wall_s=$t exit=$rc"
    remount_share
    read -r t rc < <(timed "$@")
    result "tool=$label scenario=no-change-cold rep=$rep wall_s=$t exit=$rc"
}

RESULTS=$W/results
result() {
    echo "RESULT $1" | tee -a "$RESULTS"
}

fs() { # binary dst log [options]
    local bin=$1 dst=$2 log=$3
    shift 3
    "$bin" --once "$@" "$SRC" "$W/mnt/$dst" 1 "$W/$log"
}

for rep in $(seq "$REPS"); do
    run_pair foldersync "$rep" fs fs "$BIN" fs fs.log
    run_pair rsync "$rep" rs rsync -a --delete "$SRC/" "$W/mnt/rs/"
    if [ -n "$BEFORE" ]; then
        run_pair foldersync-before "$rep" old fs "$BEFORE" old old.log
    fi
    for j in $JOBS; do
        run_pair "foldersync--jobs-$j" "$rep" "j$j" fs "$BIN" "j$j" "j$j.log" --jobs "$j"
    done
done

echo "# rsync's complaints in its last no-change pass (exit 23):"
rsync -a --delete "$SRC/" "$W/mnt/rs/" 2>&1 | sort | uniq -c | sort -rn | head -3 | sed 's/^/#   /' || true
echo "# last no-change pass of foldersync, as logged:"
grep "pass finished" "$W/fs.log" | tail -1 | sed 's/^/#   /'
if [ -n "$BEFORE" ]; then
    echo "# last no-change pass before the fix, as logged:"
    grep "pass finished" "$W/old.log" | tail -1 | sed 's/^/#   /'
fi

# Medians (and min-max) per tool and scenario.
echo
echo "| tool | first pass (s) | min–max | no-change (s) | min–max | no-change, cold caches (s) | min–max | exit statuses |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for tool in $(awk '{print $2}' "$RESULTS" | sed 's/tool=//' | awk '!seen[$0]++'); do
    row="| $tool"
    for sc in first no-change no-change-cold; do
        vals=$(grep "tool=$tool scenario=$sc " "$RESULTS" | sed 's/.*wall_s=\([^ ]*\).*/\1/' |
            awk '{printf "%.3f\n", $1}' | sort -n)
        n=$(echo "$vals" | wc -l)
        med=$(echo "$vals" | awk -v n="$n" 'NR == int((n + 1) / 2) {print}')
        row="$row | $med | $(echo "$vals" | head -1)–$(echo "$vals" | tail -1)"
    done
    codes=$(grep "tool=$tool " "$RESULTS" | sed 's/.*exit=//' | sort -u | tr '\n' ' ')
    echo "$row | $codes|"
done
