#!/usr/bin/env bash
# Time of a batch's preflight alone (`batch --dry-run`: plan + every check,
# no job run) for a grid of CONTENTS × 100 styles, with one or more binaries:
#
#   benches/preflight_jobs.sh CONTENTS BINARY [BINARY...]
#
# CONTENTS 100 gives 10,000 jobs. The images are the studio's sample
# Tübingen and The Scream, copied under numbered names; outputs go to
# out/ (none exists, so every job is checked). Prints, per binary, the
# wall time of the dry run, the jobs it listed and the load average before.
# Used for the preflight entry of benches/history.md.
set -euo pipefail
contents=$1
shift
samples="$(cd "$(dirname "$0")/.." && pwd)/crates/cli/src/serve/assets/samples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir out
c_list="" s_list=""
for i in $(seq 0 $((contents - 1))); do
    cp "$samples/tubingen.jpg" "c$i.jpg"
    c_list="$c_list\"c$i.jpg\", "
done
for i in $(seq 0 99); do
    cp "$samples/the_scream.jpg" "s$i.jpg"
    s_list="$s_list\"s$i.jpg\", "
done
printf 'contents = [%s]\nstyles = [%s]\noutput-dir = "out"\n\n[defaults]\nsize = 64\niterations = 2\n' \
    "${c_list%, }" "${s_list%, }" > jobs.toml
for bin in "$@"; do
    bin=$(realpath "$bin")
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    jobs=$("$bin" batch jobs.toml --dry-run --quiet | wc -l)
    end=$(date +%s.%N)
    echo "$bin: $jobs jobs, $(echo "$end - $start" | bc) s (load $load)"
done
