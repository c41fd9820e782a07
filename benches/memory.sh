#!/usr/bin/env bash
# Predicted vs measured peak memory of whole runs (the memory plan of
# crates/core/src/memory.rs against the kernel's peak RSS):
#
#   benches/memory.sh BINARY ITERATIONS SIZE[:FLAGS] ...
#
# e.g. benches/memory.sh target/release/neural-style 5 512 1024 "1024:--recompute" \
#          "2048:--lbfgs-history 100"
# For each SIZE (FLAGS added to the command, spaces allowed) it prints the
# plan's predicted peak (`--dry-run`, the same command), then paints the job
# (the studio's sample Tübingen and The Starry Night, candle, 2 threads,
# seed 3) under `/usr/bin/time -v` and prints the maximum resident set size,
# the ratio predicted/measured and the run's it/s. Nothing is kept.
set -euo pipefail
bin=$(realpath "$1") iters=$2
shift 2
samples="$(cd "$(dirname "$0")/.." && pwd)/crates/cli/src/serve/assets/samples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for job in "$@"; do
    size=${job%%:*} flags=""
    [ "$job" != "$size" ] && flags=${job#*:}
    # shellcheck disable=SC2086 # FLAGS are words on purpose
    set -- --backend candle --threads 2 -c "$samples/tubingen.jpg" \
        -s "$samples/starry_night.jpg" --size "$size" --iterations "$iters" --seed 3 \
        -o "$work/out.png" $flags
    plan=$("$bin" "$@" --dry-run)
    predicted=$(echo "$plan" | sed -n 's/^predicted peak \([0-9.]*\) \([GM]\)iB.*/\1 \2/p')
    read -r value unit <<<"$predicted"
    mib=$(awk -v v="$value" -v u="$unit" 'BEGIN { printf "%.0f", (u == "G" ? v * 1024 : v) }')
    load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -v -o "$work/time" "$bin" "$@" --print-every 0 2>"$work/err" >/dev/null
    kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time")
    rate=$(sed -n 's/.*s, \([0-9.]*\) it\/s[;)].*/\1/p' "$work/err")
    awk -v s="$size" -v f="$flags" -v p="$mib" -v k="$kib" -v r="$rate" -v l="$load" \
        -v h="$(echo "$plan" | head -1)" 'BEGIN {
        printf "%s %s: predicted %d MiB, measured %d MiB, predicted/measured %.3f, %s it/s (load %s)\n  %s\n",
            s, f, p, k / 1024, p / (k / 1024), r, l, h }'
done
