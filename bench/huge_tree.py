#!/usr/bin/env python3
"""The tree of issue 14's `huge` workload, shared by bench/huge.sh and
bench/watch_vs_lsyncd.sh (TREE=huge): FOLDERS folders (1,000,000 files in
50,000 folders at full size) of 20 files of 0 to 64 random bytes, as
ROOT/dNN/eNNN/fNN.txt (1,000 folders a group). Seed 14: same arguments,
same tree.

    python3 bench/huge_tree.py ROOT FOLDERS
"""
import os
import random
import sys

root, folders = sys.argv[1], int(sys.argv[2])
rng = random.Random(14)
for d in range(folders):
    path = "%s/d%02d/e%03d" % (root, d // 1000, d % 1000)
    os.makedirs(path)
    for f in range(20):
        with open("%s/f%02d.txt" % (path, f), "wb") as out:
            out.write(rng.randbytes(rng.randrange(65)))
