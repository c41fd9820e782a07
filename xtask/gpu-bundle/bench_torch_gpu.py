#!/usr/bin/env python3
"""Time one evaluation (forward + backward) of the canonical objective in PyTorch eager on a GPU.

The default objective of docs/DESIGN.md as canonical.py states it (the file shared with
tests/reference/objective.py and benches/torch_objective.py; the bundle carries a copy next to
this script): content relu4_2, style relu1_1..relu5_1, weights 5 / 100 / 1e-3, max pooling, on
random images, with the VGG19 weights of the bundle (neural-style's 8-bit safetensors file).
fp32, TF32 off unless --tf32. Prints one JSON line.
"""
import argparse, json, os, statistics, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
# The bundle: canonical.py next to this file; the repository: tests/reference/.
sys.path[:0] = [HERE, os.path.join(HERE, "..", "..", "tests", "reference")]
import canonical  # noqa: E402
import torch  # noqa: E402


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

    vgg = canonical.load_safetensors(a.weights, dev)
    shape = (1, 3, a.height, a.width)
    content, style = torch.randn(shape, device=dev) * 60, torch.randn(shape, device=dev) * 60
    loss = canonical.default_objective(vgg, content, style)
    x = (torch.randn(shape, device=dev) * 60).requires_grad_(True)

    def step():
        x.grad = None
        total = loss(x)
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
