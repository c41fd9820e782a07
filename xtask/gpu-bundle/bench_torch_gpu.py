#!/usr/bin/env python3
"""Time one evaluation (forward + backward) of the canonical objective in PyTorch eager on a GPU.

The objective of docs/DESIGN.md, as tests/reference/objective.py implements it (jcjohnson defaults:
content relu4_2, style relu1_1..relu5_1, weights 5 / 100 / 1e-3, max pooling), on random images,
with the VGG19 weights of the bundle (neural-style's 8-bit safetensors file, read here without
the safetensors package). fp32, TF32 off unless --tf32. Prints one JSON line.
"""
import argparse, json, statistics, struct, time

import torch
import torch.nn.functional as F

CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
LAYERS = []
for _b, _n in enumerate(CONVS_PER_BLOCK, 1):
    for _i in range(1, _n + 1):
        LAYERS += [f"conv{_b}_{_i}", f"relu{_b}_{_i}"]
    LAYERS.append(f"pool{_b}")


def load_vgg(path, device):
    """{convB_I: (W OIHW, b)} from `convB_I.{weight_codes,weight_table,bias}`; W = table[codes]."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": torch.float32, "U8": torch.uint8}

    def tensor(name):
        h = header[name]
        a, b = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[h["dtype"]])
        return t.reshape(h["shape"])

    vgg = {}
    for b, n in enumerate(CONVS_PER_BLOCK, 1):
        for i in range(1, n + 1):
            k = f"conv{b}_{i}"
            w = tensor(k + ".weight_table")[tensor(k + ".weight_codes").long()]
            vgg[k] = (w.contiguous().to(device), tensor(k + ".bias").to(device))
    return vgg


def features(vgg, x, wanted, pooling):
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


def gram(f):
    _, c, h, w = f.shape
    f = f.reshape(c, h * w)
    return f @ f.t() / (c * h * w)


def tv(x):
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]
    return ((dv * dv).sum() + (dh * dh).sum()) / x[0].numel()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="vgg19-caffe-q8.safetensors")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tf32", action="store_true")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)

    vgg = load_vgg(a.weights, dev)
    cl, sl = ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    shape = (1, 3, a.height, a.width)
    content, style = torch.randn(shape, device=dev) * 60, torch.randn(shape, device=dev) * 60
    with torch.no_grad():
        c_t = features(vgg, content, set(cl), "max")
        s_t = {l: gram(f) for l, f in features(vgg, style, set(sl), "max").items()}
    x = (torch.randn(shape, device=dev) * 60).requires_grad_(True)

    def step():
        x.grad = None
        f = features(vgg, x, set(cl) | set(sl), "max")
        c = sum(F.mse_loss(f[l], c_t[l]) for l in cl)
        s = sum(F.mse_loss(gram(f[l]), s_t[l]) for l in sl)
        total = 5.0 * c + 100.0 * s + 1e-3 * tv(x)
        total.backward()
        return total

    for _ in range(a.warmup):
        step()
    sync()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(json.dumps({"backend": "pytorch-eager", "torch": torch.__version__, "device": name,
                      "tf32": a.tf32, "width": a.width, "height": a.height,
                      "median_ms": round(1000 * statistics.median(times), 3),
                      "min_ms": round(1000 * min(times), 3), "iters": a.iters,
                      "peak_mem_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
                      if dev.type == "cuda" else None}))


if __name__ == "__main__":
    main()
