#!/usr/bin/env bash
# A watched pair's soak (issue 20): random operations at about RATE a
# second (default 50) for DURATION seconds (default 600) on a tree of
# FILES files (default 50,000: folders d000..d099/e0..e9 of 50 files of 1
# to 4 KiB), with foldersync `--watch SRC DST 1h LOG`, so only the watch
# syncs. The operations, at random (seed 1): a file rewritten, appended,
# made, deleted or renamed (maybe into another folder), a file's or a
# folder's mode or mtime changed, `mkdir -p` with 5 files in it, `rm -rf`
# of a folder made so, a folder renamed or moved within the tree (not
# into one made so, which `rm -rf` may take: the tree keeps its size).
#
# Reported (RESULT lines):
# - VmRSS of the daemon every 30 s, and how far each sample after the
#   first minute is from the one at the first minute;
# - CPU (utime + stime) per operation over the soak;
# - the replica at the end, once the daemon went quiet: exact or not,
#   comparing every entry's kind, mode, mtime (files and folders), size
#   and bytes;
# - the cache's entries at stop against the files in the tree.
# Needs python3; WORK (default /tmp/foldersync-soak, about 200 MB).
#
#   bench/watch_soak.sh
#   DURATION=240 bench/watch_soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-50000}
RATE=${RATE:-50}
DURATION=${DURATION:-600}
W=${WORK:-/tmp/foldersync-soak}
cargo build --release --quiet
BIN=$PWD/target/release/foldersync
rm -rf "$W" && mkdir -p "$W"
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ "${KEEP:-}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT

python3 - "$W/src" "$FILES" <<'PY'
import os, random, sys
src, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
for i in range(files):
    d = os.path.join(src, f"d{i // 500:03d}", f"e{i // 50 % 10}")
    if i % 50 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i % 50:02d}.txt"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 4096)))
PY
echo "tree: $(find "$W/src" -type f | wc -l) files in $(find "$W/src" -type d | wc -l) folders"

"$BIN" --no-menu -q --watch "$W/src" "$W/dst" 1h "$W/log" </dev/null >/dev/null 2>&1 &
pid=$!
until grep -q 'pass finished in' "$W/log" 2>/dev/null; do sleep 0.2; done
echo "first pass done"

python3 - "$W/src" "$W/dst" "$pid" "$RATE" "$DURATION" <<'PY'
import os, random, shutil, sys, time
src, dst, pid, rate, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rng = random.Random(1)
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

def scan():
    dirs, files = [], []
    for d, ds, fs in os.walk(src):
        dirs.append(d)
        files.extend(os.path.join(d, f) for f in fs)
    return dirs, files

dirs, files = scan()
made = []  # folders made by `mkdir -p`, for `rm -rf`
n = 0

def fresh(folder, prefix):
    global n
    n += 1
    return os.path.join(folder, f"{prefix}{n}")

def op():
    global dirs, files, made
    kind = rng.choices(
        ["rewrite", "append", "create", "delete", "rename", "chmod", "touch", "mkdirp", "rmrf", "mvdir"],
        # Weighed so that the tree keeps its size: as many files deleted
        # as made, as many `rm -rf` as `mkdir -p`.
        [25, 10, 12, 12, 10, 6, 6, 8, 8, 8])[0]
    try:
        if kind in ("rewrite", "append") and files:
            with open(rng.choice(files), "ab" if kind == "append" else "wb") as f:
                f.write(rng.randbytes(rng.randint(16, 4096)))
        elif kind == "create":
            p = fresh(rng.choice(dirs), "c")
            with open(p, "wb") as f:
                f.write(rng.randbytes(rng.randint(16, 4096)))
            files.append(p)
        elif kind == "delete" and files:
            p = files.pop(rng.randrange(len(files)))
            os.remove(p)
        elif kind == "rename" and files:
            i = rng.randrange(len(files))
            to = fresh(rng.choice(dirs), "r")
            os.rename(files[i], to)
            files[i] = to
        elif kind == "chmod":
            if rng.random() < 0.5 and files:
                os.chmod(rng.choice(files), rng.choice([0o644, 0o600, 0o640]))
            else:
                os.chmod(rng.choice(dirs), rng.choice([0o755, 0o750, 0o700]))
        elif kind == "touch":
            p = rng.choice(files if rng.random() < 0.5 and files else dirs)
            t = time.time() - rng.randint(0, 10**8)
            os.utime(p, (t, t))
        elif kind == "mkdirp":
            top = fresh(rng.choice(dirs), "m")
            deep = os.path.join(top, "a", "b")
            os.makedirs(deep)
            for i in range(5):
                p = os.path.join(deep if i % 2 else top, f"f{i}")
                with open(p, "wb") as f:
                    f.write(rng.randbytes(256))
                files.append(p)
            dirs += [top, os.path.join(top, "a"), deep]
            made.append(top)
        elif kind == "rmrf" and made:
            top = made.pop(rng.randrange(len(made)))
            shutil.rmtree(top)
            gone = lambda p: p == top or p.startswith(top + "/")
            dirs = [d for d in dirs if not gone(d)]
            files = [f for f in files if not gone(f)]
            made = [m for m in made if not gone(m)]
        elif kind == "mvdir":
            # Not into a folder `rm -rf` may take: the tree keeps its size.
            d = rng.choice(dirs)
            to_dir = rng.choice(dirs)
            in_made = any((to_dir + "/").startswith(m + "/") for m in made)
            if d != src and not in_made and not (to_dir + "/").startswith(d + "/"):
                to = fresh(to_dir, "v")
                os.rename(d, to)
                moved = lambda p: to + p[len(d):] if p == d or p.startswith(d + "/") else p
                dirs = [moved(x) for x in dirs]
                files = [moved(x) for x in files]
                made = [moved(x) for x in made]
    except (FileNotFoundError, FileExistsError, NotADirectoryError):
        dirs, files = scan()
    return kind

start = time.monotonic()
c0 = cpu()
samples = []
ops = 0
next_sample = start + 30
while time.monotonic() - start < duration:
    op()
    ops += 1
    now = time.monotonic()
    if now >= next_sample:
        samples.append((round(now - start), rss()))
        print(f"RESULT t_s={samples[-1][0]} vmrss_kib={samples[-1][1]} ops={ops} files={len(files)} folders={len(dirs)}", flush=True)
        next_sample += 30
    # About `rate` operations a second.
    time.sleep(max(0.0, start + ops / rate - time.monotonic()))
c1 = cpu()
elapsed = time.monotonic() - start
print(f"RESULT ops={ops} seconds={elapsed:.0f} ops_per_s={ops / elapsed:.1f} cpu_s={(c1 - c0) / tick:.1f} cpu_ms_per_op={1000 * (c1 - c0) / tick / ops:.2f}")
base = next((r for t, r in samples if t >= 60), None)
if base:
    later = [r for t, r in samples if t > 60]
    drift = max((abs(r - base) / base for r in later), default=0)
    print(f"RESULT vmrss_at_1min_kib={base} max_later_kib={max(later, default=base)} max_drift_pct={100 * drift:.1f}")

def snapshot(root):
    out = {}
    for d, ds, fs in os.walk(root):
        for name in ds + fs:
            p = os.path.join(d, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if os.path.isdir(p) and not os.path.islink(p):
                out[rel] = ("dir", st.st_mode, st.st_mtime_ns)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", st.st_mode, st.st_mtime_ns, st.st_size, hash(f.read()))
    st = os.lstat(root)
    out["."] = ("dir", st.st_mode, st.st_mtime_ns)
    return out

# Quiet: the replica catches up (checked every second, 120 s at most).
deadline = time.monotonic() + 120
while True:
    a, b = snapshot(src), snapshot(dst)
    if a == b or time.monotonic() > deadline:
        break
    time.sleep(1)
diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
print(f"RESULT entries={len(a)} files={sum(1 for v in a.values() if v[0] == 'file')} replica_exact={a == b} differing={len(diff)} caught_up_s={time.monotonic() - deadline + 120:.0f}")
for k in sorted(diff)[:10]:
    print("  differs:", k, a.get(k), b.get(k))
PY
kill -TERM "$pid"
wait "$pid" || true
pid=
echo "RESULT $(grep -o 'cache holds [0-9]* files' "$W/log" | tail -1) full_passes=$(grep -c 'pass finished in' "$W/log") watch_passes=$(grep -c 'pass over ' "$W/log") errors=$(grep -c 'ERROR' "$W/log" || true)"
