#!/usr/bin/env bash
# Compare `neural-style loss --json` with the independent PyTorch reference
# (objective.py) on inputs that need no resampling, over max/avg pooling,
# pre-/post-ReLU and pooling layers, Keras aliases, several styles and blend
# weights, both normalisations (jcjohnson, gatys). Prints both JSON lines per
# case and the worst relative difference, which must be at most 1e-5.
#
#   tests/reference/check_loss.sh PYTHON PASTICHE_BIN CONTENT.png X.png STYLE1.png STYLE2.png [BACKEND]
#
# CONTENT and X must have the same size, with longest side 256; both style
# images must have the same longest side (passed as --style-size).
set -euo pipefail
py=$1 bin=$2 c=$3 x=$4 s1=$5 s2=$6 backend=${7:-candle}
here=$(cd "$(dirname "$0")" && pwd)
ns=${NS:-$here/../../target/release/neural-style}
ssize=$("$py" -c "from PIL import Image; print(max(Image.open('$s1').size))")
cases=(
  "-s $s1|--style $s1"
  "-s $s1 $s2 --style-blend-weights 3,1 --pooling avg --content-layers conv4_2 --style-layers conv1_1,relu2_1,pool3,conv5_1 --style-layer-weights 1,2,0.5,3|--style $s1 $s2 --style-blend-weights 3 1 --pooling avg --content-layers conv4_2 --style-layers conv1_1,relu2_1,pool3,conv5_1 --style-layer-weights 1,2,0.5,3"
  "-s $s1 $s2 --style-blend-weights 1,2 --content-layers block5_conv2,relu3_3 --content-layer-weights 1,0.2 --style-layers block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1 --content-weight 1 --style-weight 1000 --tv-weight 0.1|--style $s1 $s2 --style-blend-weights 1 2 --content-layers block5_conv2,relu3_3 --content-layer-weights 1,0.2 --style-layers block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1 --content-weight 1 --style-weight 1000 --tv-weight 0.1"
  "-s $s2 --content-layers pool4 --style-layers conv2_2,pool1,relu4_4|--style $s2 --content-layers pool4 --style-layers conv2_2,pool1,relu4_4"
  "-s $s1 --normalization gatys --content-weight 1 --style-weight 1000|--style $s1 --normalization gatys --content-weight 1 --style-weight 1000"
  "-s $s1 $s2 --style-blend-weights 1,1 --normalization gatys --pooling avg --content-layers block5_conv2 --style-layers block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1 --content-weight 1 --style-weight 1 --tv-weight 0|--style $s1 $s2 --style-blend-weights 1 1 --normalization gatys --pooling avg --content-layers block5_conv2 --style-layers block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1 --content-weight 1 --style-weight 1 --tv-weight 0"
  "-s $s2 --normalization gatys --content-layers conv4_2,relu2_1 --content-layer-weights 1,0.5 --style-layers conv2_2,pool1,relu4_4 --style-layer-weights 1,2,0.5|--style $s2 --normalization gatys --content-layers conv4_2,relu2_1 --content-layer-weights 1,0.5 --style-layers conv2_2,pool1,relu4_4 --style-layer-weights 1,2,0.5"
)
worst=0
for case in "${cases[@]}"; do
  ours_args=${case%%|*} ref_args=${case#*|}
  # shellcheck disable=SC2086
  ours=$("$ns" loss --backend "$backend" --threads 2 -c "$c" --size 256 --style-size "$ssize" --image "$x" --json $ours_args)
  # shellcheck disable=SC2086
  ref=$(OMP_NUM_THREADS=2 "$py" "$here/objective.py" --threads 2 --weights-bin "$bin" --content "$c" --image "$x" $ref_args)
  echo "ours: $ours"
  echo "ref:  $ref"
  worst=$("$py" - "$ours" "$ref" "$worst" <<'PY'
import json, sys
a, b, w = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
for k in ("content", "style", "tv", "total", "grad_norm"):
    d = abs(a[k] - b[k]) / max(abs(b[k]), 1e-30)
    w = max(w, d)
print(w)
PY
)
done
echo "worst relative difference: $worst"
"$py" -c "import sys; sys.exit(0 if $worst <= 1e-5 else 1)"
