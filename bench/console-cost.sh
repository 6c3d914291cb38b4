#!/usr/bin/env bash
# The console's cost (issue 9): a first pass over the benchmark's small
# workload with the menu at a terminal (a tmux pane, quiet console) against
# the same pass with --no-menu and stderr to /dev/null. Each run starts on
# an empty replica; the pass time is the one the log's summary reports, the
# CPU time (user + system) that of the whole process, /usr/bin/time's: on a
# machine shared with other work it varies less than wall time. Modes
# alternate, after one warm-up run of each, so drift hits both.
#
#   cargo run --release --example bench -- --generate-only --workloads small --dir /tmp/foldersync-bench
#   bench/console-cost.sh /tmp/foldersync-bench/small/src
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:?usage: bench/console-cost.sh SRC}
REPS=${REPS:-5}
WORK=${WORK:-/tmp/foldersync-console-cost}
BIN=$PWD/target/release/foldersync
cargo build --release --quiet
mkdir -p "$WORK"

pass_time() { sed -n 's/.*pair 1: pass finished in \([0-9.]*\) s.*/\1/p' "$WORK/log.txt" | head -1; }
cpu_time() { awk '{print $1 + $2}' "$WORK/time"; }
# Only the log's tail: grepping a growing 10 MB log would cost the pass.
wait_pass() { until tail -n 4 "$WORK/log.txt" 2>/dev/null | grep -q 'pass finished'; do sleep 0.2; done; }

run() {
    rm -rf "$WORK/dst" "$WORK/log.txt" "$WORK/time"
    sync
    if [ "$1" = tty ]; then
        tmux new-session -d -s fs-console-cost -x 120 -y 40 \
            "/usr/bin/time -f '%U %S' -o '$WORK/time' $BIN '$SRC' '$WORK/dst' 3600 '$WORK/log.txt'"
        wait_pass
        tmux send-keys -t fs-console-cost 3 Enter
        while tmux has-session -t fs-console-cost 2>/dev/null; do sleep 0.2; done
    else
        /usr/bin/time -f '%U %S' -o "$WORK/time" \
            "$BIN" --no-menu "$SRC" "$WORK/dst" 3600 "$WORK/log.txt" 2>/dev/null &
        local timer=$!
        wait_pass
        kill -TERM "$(pgrep -P "$timer")"
        wait "$timer"
    fi
    echo "$(pass_time) $(cpu_time)"
}

run tty >/dev/null
run nomenu >/dev/null
declare -a tty nomenu tty_cpu nomenu_cpu
for rep in $(seq 1 "$REPS"); do
    if [ $((rep % 2)) = 1 ]; then order="tty nomenu"; else order="nomenu tty"; fi
    for mode in $order; do
        read -r t c < <(run "$mode")
        echo "RESULT mode=$mode rep=$rep pass_s=$t cpu_s=$c load=$(cut -d' ' -f1 /proc/loadavg)"
        if [ "$mode" = tty ]; then tty+=("$t"); tty_cpu+=("$c"); else nomenu+=("$t"); nomenu_cpu+=("$c"); fi
    done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk "BEGIN {printf \"%.3f\", $1/$2}"; }
mt=$(median "${tty[@]}") mn=$(median "${nomenu[@]}")
ct=$(median "${tty_cpu[@]}") cn=$(median "${nomenu_cpu[@]}")
echo "median pass: menu at a terminal ${mt} s, --no-menu 2>/dev/null ${mn} s, ratio $(ratio "$mt" "$mn")"
echo "median CPU:  menu at a terminal ${ct} s, --no-menu 2>/dev/null ${cn} s, ratio $(ratio "$ct" "$cn")"
rm -rf "$WORK"
