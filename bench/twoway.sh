#!/usr/bin/env bash
# Two-way sync: `foldersync --once --two-way` against Unison, side by side
# in one run, on the benchmark's small workload (examples/bench.rs
# --generate-only, seed 1: 100,000 files of 1 to 16 KiB in 5,000 folders up
# to 4 deep, 50 empty folders, 500 symlinks, one in ten dangling).
#
#   bench/twoway.sh                     # 100,000 files, 3 repetitions
#   FILES=5000 REPS=2 bench/twoway.sh   # a quick check that it all runs
#   DIR=/some/disk bench/twoway.sh      # where the trees go (default /tmp)
#
# Each repetition, for each tool, on its own two copies (`cp -a`) of the
# generated tree, A and B, and its own empty archive:
#   first     both sides hold the same tree, no archive yet;
#   no-change the pass right after it;
#   churn     1% of the files edited on A and another 1% on B (half of each
#             keep their size; new bytes, an mtime a minute in the past),
#             the same edits in both tools' trees, then one pass.
# Commands (stdout and stderr to a file on /dev/shm):
#   foldersync --once -q --two-way --state-dir STATE A B 10 LOG   (LOG on /dev/shm)
#   UNISON=ARCHIVE unison A B -batch -times -perms 0o7777 -prefer newer
# The tools alternate within each scenario (rep 1: foldersync first, rep 2:
# unison first, ...). Warm cache: page caches are never dropped (for
# neither tool); an untimed `sync` and an untimed `find` walk of the tool's
# two trees precede every timed run, so times leave out write-back of
# setup and the metadata is in the caches for both tools alike. Wall time: `date +%s%N` around the command;
# peak RSS: /usr/bin/time's "%M" (the largest maximum resident set size of
# the process and its waited-for children).
#
# Correctness, untimed, after every pass of both tools: a listing of each
# side (path, type, permission bits, size, mtime in ns and MD5 of each
# file, target of each symlink; folders' mtimes left out) must equal the
# expected one: the generated tree, plus both sides' edits after churn. A
# foldersync mismatch stops the bench; a Unison mismatch is reported
# (Unison keeps mtimes to the second: its listing is compared with mtimes
# cut to seconds).
#
# Prints one `RESULT tool=... scenario=... rep=... wall_s=... rss_kb=...
# exit=...` line per run, then a Markdown table of medians and the
# targets of issue 13. Ratios: of the medians, and the median of each
# repetition's ratio (the two tools' runs of one repetition are seconds
# apart, so they shared the machine's load). Needs unison (Debian: apt-get install -y unison),
# python3, GNU time at /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-100000}
REPS=${REPS:-3}
DIR=${DIR:-/tmp}

for tool in unison python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/twoway.sh: $tool is missing" >&2; exit 2; }
done

cargo build --release -q --bin foldersync
BIN=$PWD/target/release/foldersync
W=$(mktemp -d "$DIR/foldersync-twoway-bench.XXXXXX")
SHM=$(mktemp -d /dev/shm/foldersync-twoway-bench.XXXXXX)
trap 'rm -rf "$W" "$SHM"' EXIT

# ---------------------------------------------------------------- helper
cat >"$W/tree.py" <<'EOF'
import hashlib, os, random, sys

def listing(root, cut_ns=False):
    """path -> (type, mode, size, mtime_ns, md5 or link target)."""
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            for e in it:
                p = rel + "/" + e.name if rel else e.name
                st = e.stat(follow_symlinks=False)
                mt = st.st_mtime_ns
                if cut_ns:
                    mt -= mt % 1_000_000_000
                mode = st.st_mode & 0o7777
                if e.is_symlink():
                    out[p] = ("l", 0, 0, 0, os.readlink(e.path))
                elif e.is_dir(follow_symlinks=False):
                    out[p] = ("d", mode, 0, 0, "")
                    stack.append(p)
                else:
                    with open(e.path, "rb") as f:
                        h = hashlib.md5(f.read()).hexdigest()
                    out[p] = ("f", mode, st.st_size, mt, h)
    return out

def save(d, path):
    with open(path, "w") as f:
        for p in sorted(d):
            f.write("\t".join([p] + [str(x) for x in d[p]]) + "\n")

def load(path):
    d = {}
    with open(path) as f:
        for line in f:
            p, t, mode, size, mt, h = line.rstrip("\n").split("\t")
            d[p] = (t, int(mode), int(size), int(mt), h)
    return d

cmd = sys.argv[1]
if cmd == "list":            # list ROOT OUT
    save(listing(sys.argv[2]), sys.argv[3])
elif cmd == "churn":         # churn BASE_LIST SEED EXPECT_OUT A_ROOTS... -- B_ROOTS...
    base, seed, expect_out = load(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rest = sys.argv[5:]
    a_roots, b_roots = rest[:rest.index("--")], rest[rest.index("--") + 1:]
    rng = random.Random(seed)
    files = sorted(p for p, v in base.items() if v[0] == "f")
    k = max(1, len(files) // 100)
    picked = rng.sample(files, 2 * k)
    import time
    mtime0 = time.time_ns() - 60 * 1_000_000_000
    for side, roots, paths in (("A", a_roots, picked[:k]), ("B", b_roots, picked[k:])):
        for i, p in enumerate(paths):
            t, mode, size, _, _ = base[p]
            if i >= (k + 1) // 2:
                new = rng.randint(1024, 16 * 1024)
                size = new if new != size else size + 1
            data = rng.randbytes(size)
            mt = mtime0 + i * 1_000_003 + (0 if side == "A" else 500_000_000)
            for r in roots:
                fp = os.path.join(r, p)
                with open(fp, "r+b") as f:   # in place, as an editor that keeps the inode
                    f.write(data)
                    f.truncate(size)
                os.utime(fp, ns=(4_000_000_000 * 1_000_000_000, mt))
            base[p] = (t, mode, size, mt, hashlib.md5(data).hexdigest())
    save(base, expect_out)
elif cmd == "check":         # check EXPECT_LIST ROOT [cut]
    want = load(sys.argv[2])
    cut = len(sys.argv) > 4
    if cut:
        want = {p: (v[0], v[1], v[2], v[3] - v[3] % 1_000_000_000, v[4]) for p, v in want.items()}
    got = listing(sys.argv[3], cut)
    bad = sorted(p for p in set(want) | set(got) if want.get(p) != got.get(p))
    for p in bad[:10]:
        print(f"  {p}: want {want.get(p)} got {got.get(p)}", file=sys.stderr)
    print(len(bad))
EOF
tree() { python3 "$W/tree.py" "$@"; }

# ---------------------------------------------------------------- the tree
cargo run --release -q --example bench -- --generate-only --files "$FILES" \
    --workloads small --dir "$W/gen" >/dev/null
SRC=$W/gen/small/src
rm -rf "$W/gen/small/pristine"
tree list "$SRC" "$W/base.list"
echo "# two-way bench: $(wc -l <"$W/base.list") entries ($FILES files), $REPS reps, dir $W"
echo "# machine: $(nproc) cores, $(uname -sr), $(findmnt -no FSTYPE,OPTIONS -T "$W"); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# versions: $(unison -version); foldersync $(git describe --always --dirty)"

TOOLS=(foldersync unison)
RESULTS=$W/results

reset_trees() {
    local t=$1
    rm -rf "${W:?}/$t"
    mkdir -p "$W/$t"
    cp -a "$SRC" "$W/$t/A"
    cp -a "$SRC" "$W/$t/B"
}

run_tool() {
    local t=$1 scenario=$2 rep=$3
    local cmd
    case $t in
        foldersync) cmd=("$BIN" --once -q --two-way --state-dir "$W/$t/state"
                         "$W/$t/A" "$W/$t/B" 10 "$SHM/$t.log") ;;
        unison) cmd=(env UNISON="$W/$t/archive" unison "$W/$t/A" "$W/$t/B"
                     -batch -times -perms 0o7777 -prefer newer) ;;
    esac
    sync
    # Untimed: the tool's two trees' metadata back in the caches (other
    # runs, and other users of the machine, push them out).
    find "$W/$t/A" "$W/$t/B" -printf '' 2>/dev/null
    local t0 t1 status=0
    t0=$(date +%s%N)
    /usr/bin/time -f %M -o "$SHM/rss" "${cmd[@]}" >"$SHM/$t.out" 2>&1 || status=$?
    t1=$(date +%s%N)
    local line
    line="RESULT tool=$t scenario=$scenario rep=$rep wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}') rss_kb=$(tail -1 "$SHM/rss") exit=$status"
    echo "$line" | tee -a "$RESULTS"
    if [ "$status" != 0 ]; then
        echo "# $t exited $status; its output ends:"; tail -5 "$SHM/$t.out" | sed 's/^/#   /'
    fi
}

check() {
    local t=$1 want=$2 what=$3 side bad
    for side in A B; do
        if [ "$t" = foldersync ]; then
            bad=$(tree check "$want" "$W/$t/$side")
            if [ "$bad" != 0 ]; then
                echo "FAILED: foldersync $what: side $side differs from the expected tree at $bad paths" >&2
                exit 1
            fi
        else
            bad=$(tree check "$want" "$W/$t/$side" cut)
            [ "$bad" = 0 ] || echo "# unison $what: side $side differs from the expected tree at $bad paths"
        fi
    done
    echo "# checked: $t $what: both sides as expected"
}

for rep in $(seq "$REPS"); do
    for t in "${TOOLS[@]}"; do reset_trees "$t"; done
    if [ $((rep % 2)) = 1 ]; then order=(foldersync unison); else order=(unison foldersync); fi
    for t in "${order[@]}"; do run_tool "$t" first "$rep"; check "$t" "$W/base.list" "first rep $rep"; done
    for t in "${order[@]}"; do run_tool "$t" no-change "$rep"; check "$t" "$W/base.list" "no-change rep $rep"; done
    tree churn "$W/base.list" "$rep" "$W/churn.list" \
        "$W/foldersync/A" "$W/unison/A" -- "$W/foldersync/B" "$W/unison/B"
    for t in "${order[@]}"; do run_tool "$t" churn "$rep"; check "$t" "$W/churn.list" "churn rep $rep"; done
done
echo "# foldersync's last log lines:"; tail -3 "$SHM/foldersync.log" | sed 's/^/#   /'
echo "# unison's last output lines:"; tail -3 "$SHM/unison.out" | sed 's/^/#   /'

# ---------------------------------------------------------------- summary
python3 - "$RESULTS" "$REPS" <<'EOF'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in open(sys.argv[1])]
def med(t, s, k):
    return statistics.median(float(r[k]) for r in rows if r["tool"] == t and r["scenario"] == s)
def span(t, s):
    w = [float(r["wall_s"]) for r in rows if r["tool"] == t and r["scenario"] == s]
    return f"{min(w):.2f}–{max(w):.2f}"
print()
print(f"## two-way vs Unison (medians of {sys.argv[2]} reps)")
print()
def per_rep(s, k):
    reps = sorted({r["rep"] for r in rows})
    v = lambda t, rep: next(float(r[k]) for r in rows if r["tool"] == t and r["scenario"] == s and r["rep"] == rep)
    return statistics.median(v("foldersync", rep) / v("unison", rep) for rep in reps)
print("| scenario | foldersync wall (s) | unison wall (s) | ratio of medians | median of per-rep ratios | target | met | foldersync peak RSS (MiB) | unison peak RSS (MiB) | RSS ratio | met (≤ 0.5) |")
print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
for s, target in (("first", 0.3), ("no-change", 0.3), ("churn", 0.5)):
    fw, uw = med("foldersync", s, "wall_s"), med("unison", s, "wall_s")
    fr, ur = med("foldersync", s, "rss_kb") / 1024, med("unison", s, "rss_kb") / 1024
    pr = per_rep(s, "wall_s")
    print(f"| {s} | {fw:.3f} ({span('foldersync', s)}) | {uw:.3f} ({span('unison', s)}) | {fw/uw:.2f} | {pr:.2f} | ≤ {target} | {'yes' if max(fw/uw, pr) <= target else 'NO'} "
          f"| {fr:.1f} | {ur:.1f} | {fr/ur:.2f} | {'yes' if fr/ur <= 0.5 else 'NO'} |")
peak_f = max(float(r["rss_kb"]) for r in rows if r["tool"] == "foldersync") / 1024
peak_u = max(float(r["rss_kb"]) for r in rows if r["tool"] == "unison") / 1024
print()
print(f"Highest peak RSS of any run: foldersync {peak_f:.1f} MiB, unison {peak_u:.1f} MiB ({peak_f/peak_u:.2f}x). Wall: median (min–max).")
EOF
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
