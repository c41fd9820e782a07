#!/usr/bin/env bash
# GPU check of the cuda backend, built by `cargo xtask gpu-bundle`; needs no
# registry access and no Rust toolchain. Writes everything under $OUT.
#
#   bash run.sh [DEVICE]      DEVICE: cuda:0 (default) or `host` for a dry run
#                             of the same kernels on the CPU.
#
# Steps: the backend list; the tests (the cuda crate's: the f64 reference,
# its memory pool, L-BFGS's batched path and its synchronisation counts, the
# fp32 and tf32 precision modes, NVRTC for sm_80/90/100; and the generic
# parity suite tests/it/parity.rs built with candle and cuda: cuda against
# candle primitive by primitive and end to end); `loss --json` for a few cases,
# cuda vs candle (relative 1e-4); the device counters of an evaluation and
# of a full-history L-BFGS update at BENCH_SIZE (bin/iteration --stats);
# per-iteration time of cuda at BENCH_SIZE (512, i.e. 512x384) in both
# precision modes, fp32 and tf32, next to PyTorch eager in the same mode on
# the same GPU. Exits non-zero if any step fails.
#
# Sizes (env): LOSS_SIZE (default 256; 48 on host), BENCH_SIZE (512; 32 on
# host), BENCH_ITERS (20; 3 on host), THREADS (CPU threads for candle / host).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dev=${1:-cuda:0}
OUT=${OUT:-$here/out}
mkdir -p "$OUT"
if [ "$dev" = host ]; then
  LOSS_SIZE=${LOSS_SIZE:-48} BENCH_SIZE=${BENCH_SIZE:-32} BENCH_ITERS=${BENCH_ITERS:-3}
  export NEURAL_STYLE_CUDA_DEVICE=host
else
  LOSS_SIZE=${LOSS_SIZE:-256} BENCH_SIZE=${BENCH_SIZE:-512} BENCH_ITERS=${BENCH_ITERS:-20}
  export NEURAL_STYLE_CUDA_DEVICE=$dev NEURAL_STYLE_REQUIRE_GPU=1
fi
export NEURAL_STYLE_WEIGHTS=$here/weights/vgg19-caffe-q8.safetensors
THREADS=${THREADS:-$(nproc)}
ns=$here/bin/neural-style
w=$here/weights/vgg19-caffe-q8.safetensors
img=$here/images
py=$(command -v python3 || command -v python || true)

# NVRTC and cuBLAS: the system's, or those of the installed torch wheels.
if [ -n "$py" ]; then
  extra=$("$py" - <<'PY' 2>/dev/null
import glob, os, site
dirs = set()
for s in site.getsitepackages() + [site.getusersitepackages()]:
    for pat in ("nvidia/*/lib", "nvidia/cu*/lib", "torch/lib"):
        for d in glob.glob(os.path.join(s, pat)):
            if glob.glob(os.path.join(d, "libnvrtc*")) or glob.glob(os.path.join(d, "libcublas*")):
                dirs.add(d)
print(":".join(sorted(dirs)))
PY
)
  [ -n "$extra" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$extra"
fi

fail=0
summary=$OUT/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
# step NAME CMD...: run, log to $OUT/NAME.log, record ok/FAILED.
step() {
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then
    note "ok      $name ($((SECONDS - t0)) s)"
  else
    note "FAILED  $name ($((SECONDS - t0)) s): see $OUT/$name.log"; tail -n 15 "$OUT/$name.log"; fail=1
  fi
}

note "device: $dev   loss size: $LOSS_SIZE   bench size: $BENCH_SIZE x $BENCH_ITERS"
step backends "$ns" backends
cat "$OUT/backends.log"
if [ "$dev" != host ] && ! grep -q "cuda:" "$OUT/backends.log"; then
  note "FAILED  no GPU listed by \`neural-style backends\`"; fail=1
fi

for t in "$here"/tests/*; do
  step "parity-$(basename "$t")" "$t" --test-threads=1 --nocapture
done
grep -h -E "rel|skipped|device:|syncs|NVRTC|sm_[0-9]+:" "$OUT"/parity-*.log | tee -a "$summary"

# Device counters (launches, copies, synchronisations, peak bytes) of one
# evaluation and one L-BFGS update at history 100, on this device.
h=$((BENCH_SIZE * 3 / 4))
step counters "$here/bin/iteration" --backend cuda --device "$dev" --size "${BENCH_SIZE}x$h" \
  --threads "$THREADS" --stats --json
tail -n 1 "$OUT/counters.log" > "$OUT/counters.json"

# loss --json: cuda on $dev vs candle, several objectives.
cases=(
  "default|"
  "avg-two-styles|--pooling avg --style-blend-weights 3,1 --content-layers conv4_2 --style-layers conv1_1,relu2_1,pool3,conv5_1 --style-layer-weights 1,2,0.5,3"
  "keras-aliases|--content-layers block5_conv2,relu3_3 --content-layer-weights 1,0.2 --style-layers block1_conv1,block2_conv1,block3_conv1 --tv-weight 0.1"
)
for c in "${cases[@]}"; do
  name=${c%%|*} args=${c#*|}
  styles="$img/style.bmp"
  [ "$name" = avg-two-styles ] && styles="$img/style.bmp $img/style2.bmp"
  for b in cuda candle; do
    d=(); [ $b = cuda ] && d=(--device "$dev")
    # shellcheck disable=SC2086
    step "loss-$name-$b" "$ns" loss --json --backend $b "${d[@]}" --threads "$THREADS" --weights "$w" \
      -c "$img/content.bmp" -s $styles --image "$img/x.bmp" --size "$LOSS_SIZE" --style-size "$LOSS_SIZE" $args
  done
  if [ -n "$py" ]; then
    step "loss-$name-compare" "$py" - "$OUT/loss-$name-cuda.log" "$OUT/loss-$name-candle.log" <<'PY'
import json, sys
a, b = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3])
worst = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-30) for k in ("content", "style", "tv", "total", "grad_norm"))
print(f"cuda {a}\ncandle {b}\nworst relative difference {worst:.2e}")
sys.exit(0 if worst <= 1e-4 else 1)
PY
    grep -h "worst" "$OUT/loss-$name-compare.log" | sed "s/^/loss $name: /" | tee -a "$summary"
  fi
done

# Per-iteration time of the cuda backend (L-BFGS, the whole run loop) in
# each precision mode, and PyTorch eager in the same mode.
for mode in fp32 tf32; do
  d=$dev; [ $mode = tf32 ] && d=$dev+tf32
  note "precision mode: $mode (--device $d)"
  step bench-cuda-$mode "$ns" --backend cuda --device "$d" --threads "$THREADS" --weights "$w" \
    -c "$img/content.bmp" -s "$img/style.bmp" --size "$BENCH_SIZE" -n "$BENCH_ITERS" \
    -o "$OUT/bench-cuda-$mode.png" --json-log "$OUT/bench-cuda-$mode.jsonl" -q
  if [ -s "$OUT/bench-cuda-$mode.jsonl" ] && [ -n "$py" ]; then
    "$py" - "$OUT/bench-cuda-$mode.jsonl" "$d" "$mode" <<'PY' | tee -a "$summary"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
t = [r["elapsed"] for r in rows]
d = [b - a for a, b in zip(t, t[1:])] or t
print(json.dumps({"backend": "cuda", "device": sys.argv[2], "mode": sys.argv[3], "iters": len(rows),
                  "median_ms": round(1000 * statistics.median(d), 3), "min_ms": round(1000 * min(d), 3),
                  "first_iteration_ms": round(1000 * t[0], 3)}))
PY
  fi
  if [ -n "$py" ] && "$py" -c "import torch" 2>/dev/null; then
    tdev=cuda; [ "$dev" = host ] && tdev=cpu
    [ "$dev" != host ] && tdev=cuda:${dev#cuda:} && [ "$dev" = gpu ] && tdev=cuda
    tf=(); [ $mode = tf32 ] && tf=(--tf32)
    step bench-torch-$mode "$py" "$here/bench_torch_gpu.py" --weights "$w" --width "$BENCH_SIZE" --height "$h" \
      --iters "$BENCH_ITERS" --device "$tdev" "${tf[@]}"
    tail -n 1 "$OUT/bench-torch-$mode.log" | tee -a "$summary"
  elif [ "$dev" = host ]; then
    note "skipped bench-torch-$mode: no python with torch here (dry run)"
  else
    note "FAILED  bench-torch-$mode: no python with torch"; fail=1
  fi
done

if [ $fail = 0 ]; then note "all steps passed"; else note "some steps FAILED"; fi
exit $fail
