#!/bin/sh
# Peak memory (RSS) of `foldersync --once`: a first pass and a no-change
# pass over FOLDERS folders of 1,000 files of 3 bytes each, in /dev/shm.
# Usage: bench/once_memory.sh [BINARY] [FOLDERS...]   (default: 100 300)
set -eu
BIN=${1:-target/release/foldersync}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- 100 300
W=$(mktemp -d /dev/shm/fs-oncemem.XXXXXX)
trap 'rm -rf "$W"' EXIT
for folders in "$@"; do
  rm -rf "$W"/src "$W"/dst "$W"/state "$W"/log
  python3 -c "
import os, sys
for d in range($folders):
    p = '$W/src/d%04d' % d
    os.makedirs(p)
    for f in range(1000):
        open('%s/f%04d' % (p, f), 'w').write('abc')
"
  for run in first no-change; do
    /usr/bin/time -v "$BIN" --once -q --state-dir "$W"/state "$W"/src "$W"/dst 60 "$W"/log \
      2>"$W"/time >/dev/null
    echo "$((folders * 1000)) files, $run pass: peak RSS $(awk '/Maximum resident/ {print $6}' "$W"/time) KiB, wall $(awk '/Elapsed/ {print $8}' "$W"/time)"
  done
  grep "cache holds" "$W"/log | tail -1 | sed 's/^.*pair 1: /  /'
done
