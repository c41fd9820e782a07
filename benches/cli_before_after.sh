#!/usr/bin/env bash
# Whole-CLI speed of two `neural-style` binaries, side by side in one run:
#
#   benches/cli_before_after.sh OLD_BINARY NEW_BINARY SIZE ITERATIONS ROUNDS
#
# Each round paints the same job (the studio's sample Tübingen and The Starry
# Night, candle, 2 threads, seed 3) with OLD then NEW, and prints the it/s
# each reported and the load average before it ran. Alternating old/new in
# one run is what makes the ratio mean something on a shared machine; quote
# the pairs, not the absolute figures. Used for the before/after entries in
# benches/history.md (build both with the same profile, e.g. --release).
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") size=$3 iters=$4 rounds=$5
samples="$(cd "$(dirname "$0")/.." && pwd)/crates/cli/src/serve/assets/samples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in $(seq "$rounds"); do
    for v in old new; do
        bin=$old
        [ "$v" = new ] && bin=$new
        load=$(cut -d' ' -f1 /proc/loadavg)
        line=$("$bin" --backend candle --threads 2 -c "$samples/tubingen.jpg" \
            -s "$samples/starry_night.jpg" --size "$size" --iterations "$iters" --seed 3 \
            -o "$work/$v.png" 2>&1 | grep '^wrote')
        echo "size $size round $r $v load $load :: ${line#*; }"
    done
    cmp -s "$work/old.png" "$work/new.png" && echo "size $size round $r: same bytes" \
        || echo "size $size round $r: OUTPUTS DIFFER"
done
