#!/usr/bin/env bash
# The 4096×3072 poster (issue 23): the default plan end to end, resumable.
#
#   benches/poster.sh BINARY CONTENT STYLE DIR
#
# e.g. benches/poster.sh target/release/neural-style tubingen.jpg starry_night.jpg /tmp/poster
# Paints CONTENT in the style of STYLE at 4096 px (longest side) into
# DIR/poster.png, 16 bits a channel at 300 dpi, with the plan's own
# coarse-to-fine chain (256 → 4096 px, 1000 iterations) under --memory 18.5
# (the issue's 20 GiB cap, less the plan's error), a checkpoint every 5
# iterations. Each run is timed by `/usr/bin/time -v` (wall time, peak
# resident set) into DIR/run-N.err, its progress lines included. Stopped by
# SIGTERM or Ctrl-C, it keeps the best image and a checkpoint; the same
# command again resumes at the scale and iteration it reached.
set -euo pipefail
bin=$(realpath "$1") content=$(realpath "$2") style=$(realpath "$3") dir=$4
mkdir -p "$dir"
cd "$dir"
n=1
while [ -e "run-$n.err" ]; do n=$((n + 1)); done
echo "run $n: $dir/run-$n.err" >&2
exec /usr/bin/time -v "$bin" -c "$content" -s "$style" -o poster.png --size 4096 \
    --checkpoint-every 5 --bit-depth 16 --dpi 300 --memory 18.5 2>"run-$n.err" </dev/null
