#!/usr/bin/env bash
# The video targets of issue 24 on a synthetic clip: a slow pan and zoom over the bundled
# Tübingen photo styled with The Starry Night, by `neural-style video` and, with --baseline,
# frame by frame on their own (same settings, same iterations: --early-stop=false; each independent frame is styled
# right after the video's frame of the same number, in the same process, so both see the same
# machine load). Prints the warping error (Lai et al. 2018) of each against the input's, the
# style loss ratio, the time per frame after the first against an independently styled frame
# (a still of the same size and iterations) and the share of it spent before the optimisation
# (flow, certainty, warping), with the machine's load (`uptime`) before and after.
#
#   benches/video.sh [BIN] [SIZE] [ITERATIONS] [FRAMES] [KEEP_DIR] [FIRST]
#   defaults: target/release/neural-style 256 100 8   (BIN built with --features video)
#   FIRST: iterations on the first frame (default ITERATIONS), the same for both.
#   KEEP_DIR: where the clip, the frames and report.json stay (default: a temporary directory,
#   removed at the end); benches/video_clip.sh uses it for the README's animation.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/neural-style}
size=${2:-256}
iterations=${3:-100}
frames=${4:-8}
first=${6:-$iterations}
if [ -n "${5:-}" ]; then
    dir=$5
    mkdir -p "$dir"
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
samples=crates/cli/src/serve/assets/samples
echo "before: $(uptime)"
# 2 px per frame to the right and 1 % closer per frame, lossless.
ffmpeg -v error -nostdin -y -loop 1 -framerate 25 -i "$samples/tubingen.jpg" \
    -vf "scale=960:-2,zoompan=z='1+0.01*on':x='200+2*on':y='100':d=1:s=384x256:fps=25" \
    -frames:v "$frames" -c:v ffv1 "$dir/clip.mkv"
"$bin" video -c "$dir/clip.mkv" -s "$samples/starry_night.jpg" -o "$dir/out.mp4" \
    --size "$size" --iterations "$iterations" --first-frame-iterations "$first" \
    --threads "$(nproc)" --early-stop=false --report "$dir/report.json" --baseline --restart -q
echo "after: $(uptime)"
python3 - "$dir/report.json" "$size" "$iterations" "$frames" "$first" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e, s, t = r["warping_error"], r["style_loss"], r["seconds_per_frame"]
i = r["iterations_after_first"]
print(f"{r['width']}x{r['height']}, {sys.argv[4]} frames, {sys.argv[5]} iterations on the first, {sys.argv[3]} after"
      f" (run after the first: video {i['output']:.0f}, independent {i['baseline']:.0f})")
print(f"warping error: video {e['output']:.3e}, independent {e['baseline']:.3e}, input {e['input']:.3e}"
      f" -> video/independent {e['output'] / e['baseline']:.3f} (target <= 0.5)")
print(f"style loss: video {s['output']:.4e}, independent {s['baseline']:.4e}"
      f" -> {s['output'] / s['baseline']:.3f} (target within 20 %)")
print(f"seconds per frame after the first: video {t['after_first']:.2f}, independent {t['baseline_after_first']:.2f}"
      f" -> {t['after_first'] / t['baseline_after_first']:.3f} (target <= 1.3);"
      f" before the optimisation (flow, certainty, warping): {t['flow_and_warping_after_first']:.3f} s")
PY
