#!/usr/bin/env bash
# Byte-for-byte comparison of two `neural-style` binaries (issue 20: the
# restructure must not change the command line's behaviour or output).
#
#   tests/compare_old_binary.sh OLD_BINARY NEW_BINARY
#
# Each case runs both binaries in two fresh directories holding the same
# inputs (the studio's sample pictures, crates/cli/src/serve/assets/samples/,
# and a mask written here), small sizes on the candle backend, and compares
# the exit status, stdout, stderr and every file left in the directory
# (SHA-256). Timings (`1.2 s`, `3.4 it/s`, elapsed seconds in JSON) are the
# only thing masked. Prints one line per case; exits 1 if any differs.
set -uo pipefail
old=$(realpath "$1")
new=$(realpath "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
samples="$root/crates/cli/src/serve/assets/samples"
weights="${NEURAL_STYLE_WEIGHTS_FILE:-}"
if [ -z "$weights" ]; then
    for w in "$root/weights/vgg19-caffe-q8.safetensors" "$HOME/.cache/neural-style/vgg19-caffe-q8.safetensors"; do
        [ -f "$w" ] && weights=$w && break
    done
fi
[ -f "$weights" ] || { echo "no weights file found: set NEURAL_STYLE_WEIGHTS_FILE" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Both run under the name `neural-style` (clap's usage lines print argv[0]).
mkdir -p "$work/bin-old" "$work/bin-new"
cp "$old" "$work/bin-old/neural-style"
cp "$new" "$work/bin-new/neural-style"
old="$work/bin-old/neural-style"
new="$work/bin-new/neural-style"

# A 64×48 mask (left half white), written with Python's zlib: no image tool needed.
python3 - "$work/mask.png" <<'EOF'
import struct, sys, zlib
w, h = 64, 48
raw = b"".join(b"\0" + bytes(255 if x < w // 2 else 0 for x in range(w)) for _ in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
EOF

fixture() {
    mkdir -p "$1"
    cp "$samples/tubingen.jpg" "$1/c.jpg"
    cp "$samples/starry_night.jpg" "$1/s.jpg"
    cp "$samples/the_scream.jpg" "$1/s2.jpg"
    cp "$work/mask.png" "$1/mask.png"
    cat > "$1/jobs.toml" <<'EOF'
[defaults]
size = 48
iterations = 3
threads = 1

[[job]]
content = "c.jpg"
style = ["s.jpg"]
output = "b1.png"

[[job]]
content = "c.jpg"
style = ["s2.jpg"]
output = "b2.png"
style-weight = 50
EOF
    printf 'size = "big"\n' > "$1/bad.toml"
}

mask_timings() {
    sed -E 's/[0-9]+(\.[0-9]+)? s\b/T s/g; s/[0-9]+(\.[0-9]+)? it\/s/T it\/s/g; s/"(seconds|elapsed|time|since)":[0-9.e+-]+/"\1":T/g'
}

# run NAME DIR BINARY ARGS...: status, stdout, stderr and the files' hashes.
run() {
    local dir=$1 bin=$2
    shift 2
    (cd "$dir" && NEURAL_STYLE_WEIGHTS_FILE="$weights" timeout 600 "$bin" "$@" >"$dir.out" 2>"$dir.err"; echo "status $?" >"$dir.status")
    {
        cat "$dir.status"
        echo "--- stdout"
        mask_timings <"$dir.out"
        echo "--- stderr"
        mask_timings <"$dir.err"
        echo "--- files"
        (cd "$dir" && find . -type f | sort | xargs sha256sum)
    } >"$dir.report"
}

failed=0
case_() {
    local name=$1
    shift
    local a="$work/$name.old" b="$work/$name.new"
    fixture "$a"
    fixture "$b"
    run "$a" "$old" "$@"
    run "$b" "$new" "$@"
    if cmp -s "$a.report" "$b.report"; then
        echo "same   $name ($(head -1 "$a.report"))"
    else
        echo "DIFFER $name"
        diff "$a.report" "$b.report" | head -20
        failed=1
    fi
}

w=(--weights "$weights")
# The main job.
case_ main -c c.jpg -s s.jpg -o out.png --size 64 -n 4 "${w[@]}"
case_ preset -c c.jpg -s s.jpg -o out.png --preset gatys --size 64 -n 3 -q "${w[@]}"
case_ masks -c c.jpg -s s.jpg s2.jpg --style-mask mask.png none -o out.png --size 64 -n 3 -q "${w[@]}"
case_ colors_scales -c c.jpg -s s.jpg -o out.jpg --original-colors --scales 32,64 --scale-iterations 2,3 "${w[@]}"
case_ frames -c c.jpg -s s.jpg -o out.png --size 48 -n 4 --save-every 2 --sheet sheet.png --plot loss.svg -q "${w[@]}"
case_ adam_blend -c c.jpg -s s.jpg s2.jpg --style-blend-weights 3,1 --optimizer adam --init noise --seed 7 --color-match -o out.webp --size 48 -n 3 -q "${w[@]}"
# The other commands.
case_ loss_json loss -c c.jpg -s s.jpg --image c.jpg --size 64 --json "${w[@]}"
case_ loss_text loss -c c.jpg -s s.jpg --image s2.jpg --size 48 --preset keras "${w[@]}"
case_ compare compare -c c.jpg -s s.jpg --ratios 10,1e-4 -o cmp.png --size 48 -n 3 "${w[@]}"
case_ batch batch jobs.toml --weights "$weights"
case_ batch_dry batch jobs.toml --dry-run --shard 1/2
case_ layers layers
case_ backends backends --json
case_ help --help
case_ help_loss loss --help
case_ version --version
# Refusals.
case_ refuse_no_content -s s.jpg -o out.png
case_ refuse_backend -c c.jpg -s s.jpg -o out.png --backend torch
case_ refuse_missing_style -c c.jpg -s nowhere.jpg -o out.png
case_ refuse_overwrite_input -c c.jpg -s s.jpg -o c.jpg "${w[@]}"
case_ refuse_save_every -c c.jpg -s s.jpg -o out.png --save-every 0
case_ refuse_mask_count -c c.jpg -s s.jpg s2.jpg --style-mask mask.png -o out.png
case_ refuse_config -c c.jpg -s s.jpg -o out.png --config bad.toml
case_ refuse_ratio compare -c c.jpg -s s.jpg --ratios 0 -o cmp.png
case_ refuse_batch_shard batch jobs.toml --shard 3/2
case_ refuse_flag -c c.jpg --size ten
exit $failed
