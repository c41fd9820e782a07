#!/usr/bin/env bash
# The video targets of issue 24 on a synthetic clip: a slow pan and zoom over the bundled
# Tübingen photo styled with The Starry Night, by `neural-style video` and, with --baseline,
# frame by frame on their own (same settings, same iterations). Prints the warping error
# (Lai et al. 2018) of each against the input's, the style loss ratio, and the time per frame
# after the first against an independently styled frame (a still of the same size and
# iterations, run in the same process).
#
#   benches/video.sh [BIN] [SIZE] [ITERATIONS] [FRAMES]
#   defaults: target/release/neural-style 256 100 8   (BIN built with --features video)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/neural-style}
size=${2:-256}
iterations=${3:-100}
frames=${4:-8}
samples=crates/cli/src/serve/assets/samples
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# 2 px per frame to the right and 1 % closer per frame, lossless.
ffmpeg -v error -nostdin -y -loop 1 -framerate 25 -i "$samples/tubingen.jpg" \
    -vf "scale=960:-2,zoompan=z='1+0.01*on':x='200+2*on':y='100':d=1:s=384x256:fps=25" \
    -frames:v "$frames" -c:v ffv1 "$dir/clip.mkv"
"$bin" video -c "$dir/clip.mkv" -s "$samples/starry_night.jpg" -o "$dir/out.mp4" \
    --size "$size" --iterations "$iterations" --first-frame-iterations "$iterations" \
    --threads "$(nproc)" --report "$dir/report.json" --baseline -q
python3 - "$dir/report.json" "$size" "$iterations" "$frames" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e, s, t = r["warping_error"], r["style_loss"], r["seconds_per_frame"]
print(f"{r['width']}x{r['height']}, {sys.argv[4]} frames, {sys.argv[3]} iterations per frame")
print(f"warping error: video {e['output']:.3e}, independent {e['baseline']:.3e}, input {e['input']:.3e}"
      f" -> video/independent {e['output'] / e['baseline']:.3f} (target <= 0.5)")
print(f"style loss: video {s['output']:.4e}, independent {s['baseline']:.4e}"
      f" -> {s['output'] / s['baseline']:.3f} (target within 20 %)")
print(f"seconds per frame after the first: video {t['after_first']:.2f}, independent {t['baseline_after_first']:.2f}"
      f" -> {t['after_first'] / t['baseline_after_first']:.3f} (target <= 1.3)")
PY
