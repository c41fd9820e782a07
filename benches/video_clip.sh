#!/usr/bin/env bash
# The README's real clip (issue 24): benches/video.sh on a slow pan and zoom over the bundled
# Tübingen photo with The Starry Night (Ruder et al.'s method and, with --baseline, every frame
# styled on its own), then docs/video_tubingen.webp: the input, the independent frames and the
# video side by side, looping.
#
#   benches/video_clip.sh [BIN] [FRAMES] [ITERATIONS] [FIRST] [KEEP_DIR]
#   defaults: target/release/neural-style 24 40 100 (a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/neural-style}
frames=${2:-24}
iterations=${3:-40}
first=${4:-100}
if [ -n "${5:-}" ]; then
    dir=$5
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
benches/video.sh "$bin" 256 "$iterations" "$frames" "$dir" "$first"
# The input at the frames' size, then input | independent | video, 8 frames a second.
f=$dir/out_frames
ffmpeg -v error -nostdin -y -i "$dir/clip.mkv" -framerate 8 -i "$f/baseline/frame_%06d.png" \
    -framerate 8 -i "$f/frame_%06d.png" -filter_complex \
    "[0:v]setpts=N/(8*TB)[i];[1:v]setpts=N/(8*TB)[b];[2:v]setpts=N/(8*TB)[o];[i][b]scale2ref[is][bs];[is][bs][o]hstack=inputs=3[v]" \
    -map "[v]" -r 8 -loop 0 -c:v libwebp_anim -lossless 0 -quality 55 -compression_level 6 \
    docs/video_tubingen.webp
ls -l docs/video_tubingen.webp
