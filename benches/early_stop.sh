#!/usr/bin/env bash
# Where the stopping rule (crates/core/src/stopping.rs) stops a run, and how far the
# stopped picture is from the full run's: for each content/style pair and size, one run of
# every iteration (--early-stop=false) recording the loss and the frame of every iteration,
# then the rule replayed on it (`cargo xtask early-stop`, xtask/src/bench_early_stop.rs:
# the stop, the loss against the last iteration's, the mean absolute pixel difference).
# The rule does not change the trajectory, so the replay is where the default run stops.
#
#   benches/early_stop.sh [--sizes 256,512] [--iterations 1000] [--out DIR] [CONTENT STYLE]...
#
# Default pairs: the README's (tubingen × starry_night) and tubingen × the_scream, from the
# studio's bundled samples (crates/cli/src/serve/assets/samples/); give more pairs as
# arguments. Needs a release build (`cargo build --release`); 256 px × 1000 iterations is
# ~5 min on 2 quiet cores, 512 px ~17 min. Then, to tune the thresholds on the recorded runs:
#   cargo xtask early-stop --grid DIR/*-256 DIR/*-512
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
samples=$root/crates/cli/src/serve/assets/samples
sizes=256,512
iterations=1000
out=${CARGO_TARGET_DIR:-$root/target}/early_stop
pairs=()
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) pairs+=("$1" "$2"); shift 2 ;;
  esac
done
if [ ${#pairs[@]} -eq 0 ]; then
  pairs=("$samples/tubingen.jpg" "$samples/starry_night.jpg"
         "$samples/tubingen.jpg" "$samples/the_scream.jpg")
fi
bin=${CARGO_TARGET_DIR:-$root/target}/release/neural-style
[ -x "$bin" ] || (cd "$root" && cargo build --release)
mkdir -p "$out"
dirs=()
for ((i = 0; i < ${#pairs[@]}; i += 2)); do
  c=${pairs[i]}; s=${pairs[i + 1]}
  name=$(basename "${c%.*}")-$(basename "${s%.*}")
  for size in ${sizes//,/ }; do
    d=$out/$name-$size
    rm -rf "$d"; mkdir -p "$d"
    echo "$name at $size px: $c × $s, $iterations iterations" | tee "$d/pair.txt"
    "$bin" -c "$c" -s "$s" --size "$size" -n "$iterations" --early-stop=false --threads 2 \
      --save-every 1 --frames-dir "$d/frames" --json-log "$d/log.jsonl" -o "$d/out.png" \
      --print-every 0 2> "$d/stderr"
    dirs+=("$d")
  done
done
cd "$root"
cargo xtask early-stop "${dirs[@]}"
