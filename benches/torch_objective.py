#!/usr/bin/env python3
"""PyTorch eager peer of `cargo xtask bench`: the canonical objective of docs/DESIGN.md on the CPU.

Needs only torch. The objective is tests/reference/canonical.py's `default_objective` (the
one statement of it, shared with the reference and the GPU bundle's peer): content relu4_2,
style relu1_1..relu5_1, weights 5 / 100 / 1e-3, max pooling; the weights are read from the
project's `weights/vgg19-caffe-q8.safetensors`, and the images are the procedural ones of
`benches/iteration.rs` (`procedural()` below mirrors its formula).

Modes (each prints one JSON line):
  --mode time      median seconds per evaluation (forward + backward) and peak RSS
  --mode to-loss   torch.optim.LBFGS (lr 1, history 100, no line search: the algorithm of
                   core's Lbfgs) from the content image; elapsed time and loss per evaluation
  --mode gemm      torch.mm GFLOP/s at the shapes `benches/iteration.rs --gemm-ceiling` uses

  OMP_NUM_THREADS=2 python benches/torch_objective.py --width 256 --height 192 --threads 2
"""
import argparse, json, math, os, resource, statistics, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import canonical  # noqa: E402
import torch  # noqa: E402


def procedural(kind, w, h):
    """Caffe-space 1×3×H×W image; the same formula as `procedural` in benches/iteration.rs."""
    fx, fy, amp = {"content": (0.045, 0.031, 80.0), "style": (0.21, 0.17, 90.0),
                   "x": (0.11, 0.07, 60.0)}[kind]
    v = [amp * math.sin(fx * (c + 1) * i + fy * j + 0.7 * c) * math.cos(0.013 * (i - j) + c)
         for c in range(3) for j in range(h) for i in range(w)]
    return torch.tensor(v, dtype=torch.float32).reshape(1, 3, h, w)


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def setup(a):
    vgg = canonical.load_safetensors(a.weights)
    return canonical.default_objective(vgg, procedural("content", a.width, a.height),
                                       procedural("style", a.width, a.height))


def time_mode(a, base):
    loss = setup(a)
    x = procedural("x", a.width, a.height).requires_grad_(True)

    def step():
        x.grad = None
        loss(x).backward()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return dict(base, times=times, median_s=statistics.median(times))


def to_loss_mode(a, base):
    loss = setup(a)
    x = procedural("content", a.width, a.height).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=a.iters, max_eval=a.iters, history_size=100,
                            tolerance_grad=-1, tolerance_change=-1, line_search_fn=None)
    curve = []
    t0 = time.perf_counter()

    def closure():
        opt.zero_grad()
        v = loss(x)
        v.backward()
        curve.append([time.perf_counter() - t0, v.item()])
        return v

    opt.step(closure)
    return dict(base, curve=curve)


def gemm_mode(a, base):
    shapes = [(64, 64 * 9, 4096), (128, 128 * 9, 4096), (256, 256 * 9, 3072),
              (512, 512 * 9, 768), (1024, 1024, 1024)]
    out = []
    for m, k, n in shapes:
        A, B = torch.randn(m, k), torch.randn(k, n)
        torch.mm(A, B)
        best = math.inf
        for _ in range(a.reps):
            t0 = time.perf_counter()
            torch.mm(A, B)
            best = min(best, time.perf_counter() - t0)
        out.append({"m": m, "k": k, "n": n, "gflops": 2 * m * k * n / best / 1e9})
    return dict(base, shapes=out, best_gflops=max(s["gflops"] for s in out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("time", "to-loss", "gemm"), default="time")
    p.add_argument("--weights", default=os.path.join(HERE, "..", "weights",
                                                     "vgg19-caffe-q8.safetensors"))
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--iters", type=int, default=40, help="to-loss: evaluations")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    base = {"backend": "pytorch", "device": f"torch {torch.__version__} cpu "
            f"({torch.backends.cpu.get_cpu_capability()})", "width": a.width,
            "height": a.height, "threads": torch.get_num_threads()}
    out = {"time": time_mode, "to-loss": to_loss_mode, "gemm": gemm_mode}[a.mode](a, base)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
