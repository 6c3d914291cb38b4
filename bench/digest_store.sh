#!/bin/sh
# What the stored digest cache saves: `foldersync --once --checksum` and a
# `--checksum` daemon's first pass after a restart, each with the pair's
# state file kept from the run before ("stored") and with it deleted first
# ("cold"), alternating, on a tree of small files and on a few big files,
# in /dev/shm (so the times are CPU and system calls, not a disk).
# Reported: wall time (of the pass, from the log, for the daemon) and the
# bytes the process read through system calls (rchar, /proc/PID/io, read
# once it exited and before it was reaped).
# Usage: bench/digest_store.sh [BINARY]   (env: FILES=100000 BIG=4 BIG_MIB=512 REPS=3)
set -eu
BIN=$(realpath "${1:-target/release/foldersync}")
FILES=${FILES:-100000}
BIG=${BIG:-4}
BIG_MIB=${BIG_MIB:-512}
REPS=${REPS:-3}
W=$(mktemp -d /dev/shm/fs-digeststore.XXXXXX)
trap 'rm -rf "$W"' EXIT

# run NAME ARGS...: one run, prints "NAME wall_s rchar_MiB"
cat >"$W/run.py" <<'EOF'
import os, re, subprocess, sys, time
name, mode, log = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
def rchar(pid):
    for line in open(f"/proc/{pid}/io"):
        if line.startswith("rchar:"):
            return int(line.split()[1])
if mode == "once":
    t = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    wall, read = time.monotonic() - t, rchar(p.pid)
    p.wait()
else:
    before = open(log).read().count("pass finished") if os.path.exists(log) else 0
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    while True:
        text = open(log).read() if os.path.exists(log) else ""
        if text.count("pass finished") > before:
            break
        time.sleep(0.02)
    read = rchar(p.pid)
    # A daemon takes big files' digests after the pass: let it, as one
    # that keeps running would, before stopping it.
    while os.environ.get("FILL") and "took the digests" not in open(log).read():
        time.sleep(0.05)
    p.send_signal(2)
    p.wait()
    wall = float(re.findall(r"pass finished in ([0-9.]+) s", text)[-1])
print(f"{name:<32} {wall:8.2f} s {read / 2**20:10.1f} MiB read")
EOF

measure() { # TREE LABEL [fill: wait for the digests a cold daemon takes after its pass]
  T=$1
  S="$W/state-$2"
  once() { "$BIN" --once -q --checksum --state-dir "$S" "$T"/src "$T"/dst 60 "$T"/log; }
  once # the first copy
  for r in $(seq "$REPS"); do
    python3 "$W/run.py" "$2 --once --checksum, stored" once "" \
      "$BIN" --once -q --checksum --state-dir "$S" "$T"/src "$T"/dst 60 "$T"/log
    rm -f "$S"/pair-*.sqlite
    python3 "$W/run.py" "$2 --once --checksum, cold" once "" \
      "$BIN" --once -q --checksum --state-dir "$S" "$T"/src "$T"/dst 60 "$T"/log
  done
  for r in $(seq "$REPS"); do
    rm -f "$T"/dlog
    python3 "$W/run.py" "$2 daemon restart, stored" daemon "$T"/dlog \
      "$BIN" --no-menu -v --checksum --state-dir "$S" "$T"/src "$T"/dst 3600 "$T"/dlog
    rm -f "$S"/pair-*.sqlite "$T"/dlog
    FILL=${3:-} python3 "$W/run.py" "$2 daemon restart, cold" daemon "$T"/dlog \
      "$BIN" --no-menu -v --checksum --state-dir "$S" "$T"/src "$T"/dst 3600 "$T"/dlog
  done
  # Last: a cold run without --checksum stores entries without digests.
  for r in $(seq "$REPS"); do
    python3 "$W/run.py" "$2 --once, stored" once "" \
      "$BIN" --once -q --state-dir "$S" "$T"/src "$T"/dst 60 "$T"/log
    rm -f "$S"/pair-*.sqlite
    python3 "$W/run.py" "$2 --once, cold" once "" \
      "$BIN" --once -q --state-dir "$S" "$T"/src "$T"/dst 60 "$T"/log
  done
}

python3 - "$W/small/src" "$FILES" <<'EOF'
import os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
for i in range(files):
    d = f"{root}/d{i // 20 // 50:03d}/e{i // 20 % 50:02d}"
    if i % 20 == 0:
        os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i % 20:02d}", "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 16384)))
EOF
mkdir -p "$W/big/src"
for i in $(seq "$BIG"); do
  head -c "$((BIG_MIB << 20))" /dev/urandom >"$W/big/src/big$i.bin"
done
# Entries recorded within 2 s of a file's ctime are racy (re-read).
sleep 3
echo "small: $FILES files of 1 to 16 KiB ($(du -sm "$W/small/src" | cut -f1) MiB); big: $BIG files of $BIG_MIB MiB"
measure "$W/small" small
measure "$W/big" big fill
