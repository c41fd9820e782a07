"""The canonical objective of docs/DESIGN.md in PyTorch, stated once.

Imported by the independent reference (tests/reference/objective.py), the CPU timing peer
(benches/torch_objective.py) and the GPU bundle's peer (xtask/gpu-bundle/bench_torch_gpu.py,
which `cargo xtask gpu-bundle` ships with a copy of this file). Needs only torch.

Two normalisations: jcjohnson's (means, Gram / (C·H·W)) and the one of Gatys et al. and the
Keras write-up, computed literally in float32: content ½·Σ(F − C)², unnormalised Gram
G = F Fᵀ, style 1/(4 N² M²)·Σ(G − A)² with A = (M / M_s)·F_s F_sᵀ (the style image's Gram
taken to the output's M = H·W positions; the paper's A when M_s = M).
"""
import json, re, struct, sys, warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MEAN_BGR = (103.939, 116.779, 123.68)
CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
# The VGG19 layer sequence in the paper's names: conv{b}_{i}, relu{b}_{i}, pool{b}.
LAYERS = []
for _b, _n in enumerate(CONVS_PER_BLOCK, 1):
    for _i in range(1, _n + 1):
        LAYERS += [f"conv{_b}_{_i}", f"relu{_b}_{_i}"]
    LAYERS.append(f"pool{_b}")
# The default job: layers and the weights of content, style and total variation.
CONTENT = ["relu4_2"]
STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 5.0, 100.0, 1e-3


def canonical(name):
    """Layer name -> canonical name; Keras `block{b}_conv{i}` is an alias of relu{b}_{i}."""
    m = re.fullmatch(r"block(\d)_conv(\d)", name)
    if m:
        name = f"relu{m[1]}_{m[2]}"
    if name not in LAYERS:
        sys.exit(f"unknown layer name: {name}")
    return name


def load_safetensors(path, device="cpu"):
    """{convB_I: (W OIHW, b)} from neural-style's weights file (header parsed by hand, no
    safetensors package): the 8-bit `weight_codes` + `weight_table` (W = table[codes],
    dequantised exactly as the Rust loader does) or a plain f32 `weight`."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": torch.float32, "U8": torch.uint8}

    def get(name):
        h = header[name]
        a, b = h["data_offsets"]
        return torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[h["dtype"]]).reshape(h["shape"])

    w = {}
    for name in LAYERS:
        if name.startswith("conv"):
            if name + ".weight" in header:
                W = get(name + ".weight")
            else:
                W = get(name + ".weight_table")[get(name + ".weight_codes").long()]
            w[name] = (W.contiguous().to(device), get(name + ".bias").contiguous().to(device))
    return w


def features(vgg, x, wanted, pooling="max"):
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


def targets(vgg, content, styles, cl, sl, pooling="max", normalization="jcjohnson"):
    """The content features {layer: F} and, per style image, {layer: (Gram, M_s)}."""
    with torch.no_grad():
        c_targets = features(vgg, content, set(cl), pooling)
        s_targets = [{l: (gram(f, normalization), f.shape[2] * f.shape[3])
                      for l, f in features(vgg, s, set(sl), pooling).items()}
                     for s in styles]
    return c_targets, s_targets


def parts(vgg, x, c_targets, s_targets, blend, cl, cw_l, sl, sw_l, pooling="max",
          normalization="jcjohnson"):
    """Unweighted (content, style, tv) at x, the targets from `targets`."""
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


def default_objective(vgg, content, style):
    """The default job's total loss as a function of x (one style image, max pooling)."""
    c_t, s_t = targets(vgg, content, [style], CONTENT, STYLE)
    ones = [1.0] * len(STYLE)

    def total(x):
        c, s, t = parts(vgg, x, c_t, s_t, [1.0], CONTENT, [1.0], STYLE, ones)
        return CONTENT_WEIGHT * c + STYLE_WEIGHT * s + TV_WEIGHT * t

    return total
