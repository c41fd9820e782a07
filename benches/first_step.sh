#!/usr/bin/env bash
# The first 20 L-BFGS iterations at 1024 px with Torch's first step
# (`--lbfgs-first-step torch`, min(1, 1/‖g‖₁)) and with the default pixel rule
# (a typical pixel moves a tenth of a level), defaults otherwise (content
# start), one thread, release build. Prints the total loss per iteration side
# by side; figures are in benches/history.md.
#
#   cargo build --release && benches/first_step.sh CONTENT STYLE [OUTDIR]
set -euo pipefail
content=$1 style=$2 out=${3:-target/first_step}
ns=${NS:-target/release/neural-style}
mkdir -p "$out"
for rule in torch pixel; do
  "$ns" -c "$content" -s "$style" --size 1024 -n 20 --threads 1 -q \
    --lbfgs-first-step "$rule" --json-log "$out/$rule.jsonl" -o "$out/$rule.jpg"
done
python3 - "$out/torch.jsonl" "$out/pixel.jsonl" <<'PY'
import json, sys
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
print("| iteration | torch: total loss | pixel: total loss |")
print("|---|---|---|")
for a, b in zip(*runs):
    print(f"| {a['iteration']} | {a['total']:.4e} | {b['total']:.4e} |")
PY
