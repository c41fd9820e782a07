//! Time per iteration (one evaluation of the canonical objective and its
//! gradient: forward to relu5_1 + backward) for each compiled backend. This is
//! the measuring end of `cargo xtask bench`, which runs it once per backend and
//! size in a fresh process (so that peak memory is per case); run by hand it
//! prints a table for every enabled backend.
//!
//! Real VGG19 weights when they are present (`cargo xtask weights`), else
//! full-size synthetic ones (the cost depends only on the shapes). Images are
//! procedural (`procedural`), mirrored exactly by `benches/torch_objective.py`,
//! so the PyTorch peer optimises the same problem.
//!
//! ```text
//! cargo bench --bench iteration                       # THREADS=2 SIZES=128x96,256x192
//! …/iteration --backend candle --size 256x192 --reps 5 --json
//! …/iteration --backend candle --size 256x192 --to-loss 40 --json
//! …/iteration --backend candle --size 64x48 --to-loss 1500 --target 1.2e5 --json
//! …/iteration --gemm-ceiling --json
//! …/iteration --list
//! …/iteration --size 256x192 --write-images DIR   # content.png, style.png for CLI runs
//! …/iteration --backend cuda --device host --size 512x384 --stats --json
//! ```
//!
//! `--stats` (backends with device counters: cuda) counts instead of timing:
//! launches, copies, synchronisations and memory of one evaluation, and of one
//! L-BFGS update with a full history of 100 pairs — batched (the backend's
//! default) and per-operation — filled on a quadratic over an image-sized
//! vector (the update's counts do not depend on the objective).

use neural_style::backends::{self, Selection, WithBackend};
use neural_style::core::backend::{AdamCoeffs, Backend, DeviceCounters, VecOps};
use neural_style::core::image_io::Picture;
use neural_style::core::layers::VGG19_WIDTHS;
use neural_style::core::objective::{Loss, Objective, ObjectiveSpec};
use neural_style::core::optim::{ill_conditioned_quadratic, Lbfgs, LbfgsConfig, Optimizer};
use neural_style::core::pixel::CaffeImage;
use neural_style::core::run::{self, IterationReport, Observer, OptimizerKind, RunOptions};
use neural_style::core::vgg::Vgg;
use neural_style::core::Result;
use neural_style_weights::{self as weights, Vgg19Weights, WeightsFile};
use std::time::Instant;

/// A smooth caffe-space image (planar BGR); `benches/torch_objective.py`
/// computes the same formula.
fn procedural(kind: &str, w: usize, h: usize) -> CaffeImage {
    let (fx, fy, amp) = match kind {
        "content" => (0.045, 0.031, 80.0),
        "style" => (0.21, 0.17, 90.0),
        _ => (0.11, 0.07, 60.0),
    };
    let mut data = Vec::with_capacity(3 * w * h);
    for c in 0..3 {
        let cf = c as f64;
        for j in 0..h {
            for i in 0..w {
                let (i, j) = (i as f64, j as f64);
                let v = amp
                    * (fx * (cf + 1.0) * i + fy * j + 0.7 * cf).sin()
                    * (0.013 * (i - j) + cf).cos();
                data.push(v as f32);
            }
        }
    }
    CaffeImage {
        width: w,
        height: h,
        data,
    }
}

/// Peak resident memory of this process (`VmHWM`), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

enum Mode {
    /// Warm-up evaluations, then timed ones.
    Time { warmup: usize, reps: usize },
    /// Device counters of an evaluation and of full-history L-BFGS updates.
    Stats,
    /// L-BFGS from the content image for this many evaluations, or until
    /// the loss first falls below `target`.
    ToLoss { iters: usize, target: Option<f64> },
}

struct Case<'a> {
    weights: &'a Vgg19Weights,
    w: usize,
    h: usize,
    mode: Mode,
}

/// Times per evaluation, or `(elapsed, loss)` per evaluation of a run, or
/// device counters.
struct Measured {
    device: String,
    times: Vec<f64>,
    curve: Vec<(f64, f64)>,
    stats: Option<serde_json::Value>,
}

/// A backend's vector operations with L-BFGS's batched path turned off.
struct PerOperation<'a, B>(&'a B);

impl<B: Backend> VecOps for PerOperation<'_, B> {
    type Vector = B::Tensor;
    fn dot(&self, a: &B::Tensor, b: &B::Tensor) -> Result<f64> {
        self.0.dot(a, b)
    }
    fn norm1(&self, a: &B::Tensor) -> Result<f64> {
        self.0.norm1(a)
    }
    fn axpy(&self, alpha: f64, x: &B::Tensor, y: &mut B::Tensor) -> Result<()> {
        self.0.axpy(alpha, x, y)
    }
    fn scale(&self, alpha: f64, x: &mut B::Tensor) -> Result<()> {
        self.0.scale(alpha, x)
    }
    fn zeros_like(&self, like: &B::Tensor) -> Result<B::Tensor> {
        self.0.zeros_like(like)
    }
    fn adam_update(
        &self,
        x: &mut B::Tensor,
        g: &B::Tensor,
        m: &mut B::Tensor,
        v: &mut B::Tensor,
        c: AdamCoeffs,
    ) -> Result<()> {
        self.0.adam_update(x, g, m, v, c)
    }
    fn copy_from(&self, dst: &mut B::Tensor, src: &B::Tensor) -> Result<()> {
        self.0.copy_from(dst, src)
    }
}

fn counters_json(c: &DeviceCounters) -> serde_json::Value {
    let kernels: Vec<_> = c
        .kernels
        .iter()
        .map(|k| {
            serde_json::json!({"name": k.name, "launches": k.launches, "items": k.items,
                "flops": k.flops, "bytes": k.bytes})
        })
        .collect();
    serde_json::json!({"launches": c.launches, "uploads": c.uploads,
        "upload_bytes": c.upload_bytes, "downloads": c.downloads,
        "download_bytes": c.download_bytes, "syncs": c.syncs, "allocs": c.allocs,
        "peak_bytes": c.peak_bytes, "kernels": kernels})
}

/// L-BFGS history of the `--stats` update counts.
const STATS_HISTORY: usize = 100;

/// Counters of the `STATS_HISTORY + 5`th L-BFGS update on
/// `ill_conditioned_quadratic` (so that the history fills up).
fn update_counters<B: Backend, O: VecOps<Vector = B::Tensor>>(
    b: &B,
    ops: &O,
    shape: [usize; 3],
) -> Result<serde_json::Value> {
    let n: usize = shape.iter().product();
    let mut x = b.upload(&vec![0.0; n], shape)?;
    let mut opt = Lbfgs::new(LbfgsConfig {
        history: STATS_HISTORY,
        ..Default::default()
    });
    let mut last = None;
    for _ in 0..STATS_HISTORY + 5 {
        let (f, g) = ill_conditioned_quadratic(&b.download(&x)?);
        let g = b.upload(&g, shape)?;
        b.synchronize()?;
        b.reset_counters();
        Optimizer::<O>::update(&mut opt, ops, &mut x, f, &g)?;
        last = b.counters();
    }
    let held = opt.stats().0;
    Ok(serde_json::json!({"history": held, "counters": last.as_ref().map(counters_json)}))
}

/// `(elapsed, loss)` per evaluation; raises `stop` once the loss is at or below
/// `target`.
struct Curve<'a> {
    points: Vec<(f64, f64)>,
    target: Option<f64>,
    stop: &'a std::sync::atomic::AtomicBool,
}
impl Observer for Curve<'_> {
    fn on_iteration(
        &mut self,
        r: &IterationReport,
        _: &mut dyn FnMut() -> Result<CaffeImage>,
    ) -> Result<()> {
        self.points.push((r.elapsed, r.loss.total));
        if self.target.is_some_and(|t| r.loss.total <= t) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

impl WithBackend for Case<'_> {
    type Output = Measured;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<Measured> {
        let device = backend.device();
        let net = Vgg::new(backend, self.weights, Default::default())?;
        let (w, h) = (self.w, self.h);
        let content = procedural("content", w, h);
        let style = procedural("style", w, h);
        let objective = Objective::new(&net, ObjectiveSpec::default(), &content, &[(style, 1.0)])?;
        let b = net.backend();
        let mut out = Measured {
            device,
            times: Vec::new(),
            curve: Vec::new(),
            stats: None,
        };
        match self.mode {
            Mode::Stats => {
                let x = b.upload(&procedural("x", w, h).data, [3, h, w])?;
                objective.evaluate(&x)?;
                b.synchronize()?;
                b.reset_counters();
                objective.evaluate(&x)?;
                let Some(eval) = b.counters() else {
                    return Err(neural_style::core::Error::backend(
                        b.name(),
                        "--stats: this backend keeps no device counters",
                    ));
                };
                let batched = update_counters(b, b, [3, h, w])?;
                let per_op = update_counters(b, &PerOperation(b), [3, h, w])?;
                out.stats = Some(serde_json::json!({"evaluation": counters_json(&eval),
                    "update_batched": batched, "update_per_operation": per_op}));
            }
            Mode::Time { warmup, reps } => {
                let x = b.upload(&procedural("x", w, h).data, [3, h, w])?;
                for _ in 0..warmup {
                    objective.evaluate(&x)?;
                }
                b.synchronize()?;
                for _ in 0..reps {
                    let t = Instant::now();
                    objective.evaluate(&x)?;
                    b.synchronize()?;
                    out.times.push(t.elapsed().as_secs_f64());
                }
            }
            Mode::ToLoss { iters, target } => {
                let opts = RunOptions {
                    iterations: iters,
                    optimizer: OptimizerKind::Lbfgs(LbfgsConfig::default()),
                    stop_rule: None,
                };
                let stop = std::sync::atomic::AtomicBool::new(false);
                let mut curve = Curve {
                    points: Vec::new(),
                    target,
                    stop: &stop,
                };
                run::run(&objective, &content, &opts, &mut curve, &stop)?;
                out.curve = curve.points;
            }
        }
        Ok(out)
    }
}

/// The VGG-like sgemm shapes `m×k · k×n` of the ceiling (conv1_2, conv2_x,
/// conv3_x and conv4_x as im2col GEMMs, and a big square); PyTorch's peer
/// (`benches/torch_objective.py --mode gemm`) times torch.mm on the same.
const CEILING_SHAPES: [(usize, usize, usize); 5] = [
    (64, 64 * 9, 4096),
    (128, 128 * 9, 4096),
    (256, 256 * 9, 3072),
    (512, 512 * 9, 768),
    (1024, 1024, 1024),
];

/// A CBLAS library opened at run time (`dlopen`, each with its own
/// symbols, so that OpenBLAS and BLIS — which both export `cblas_sgemm` —
/// are measured in one process, side by side with the `gemm` crate).
struct Cblas {
    name: &'static str,
    soname: &'static str,
    sgemm: CblasSgemm,
    /// Sets the library's own thread count.
    set_threads: Box<dyn Fn(usize)>,
}

type CblasSgemm = unsafe extern "C" fn(
    layout: i32,
    trans_a: i32,
    trans_b: i32,
    m: i32,
    n: i32,
    k: i32,
    alpha: f32,
    a: *const f32,
    lda: i32,
    b: *const f32,
    ldb: i32,
    beta: f32,
    c: *mut f32,
    ldc: i32,
);
const CBLAS_ROW_MAJOR: i32 = 101;
const CBLAS_NO_TRANS: i32 = 111;

impl Cblas {
    /// OpenBLAS (Debian: libopenblas0-pthread) and BLIS (libblis4-openmp or
    /// -pthread), those of them this machine has.
    #[cfg(unix)]
    fn available() -> Vec<Cblas> {
        let mut out = Vec::new();
        // SAFETY: dlopen/dlsym with NUL-terminated names; each symbol is
        // cast to the C signature its library's header declares
        // (cblas.h; OpenBLAS's `openblas_set_num_threads(int)`; BLIS's
        // `bli_thread_set_num_threads(dim_t)`, dim_t = int64_t).
        unsafe {
            let open = |soname: &str| {
                let c = std::ffi::CString::new(soname).expect("no NUL");
                let h = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                (!h.is_null()).then_some(h)
            };
            let sym = |h: *mut libc::c_void, name: &str| {
                let c = std::ffi::CString::new(name).expect("no NUL");
                let p = libc::dlsym(h, c.as_ptr());
                (!p.is_null()).then_some(p)
            };
            if let Some(h) = open("libopenblas.so.0") {
                if let (Some(g), Some(t)) =
                    (sym(h, "cblas_sgemm"), sym(h, "openblas_set_num_threads"))
                {
                    let t: unsafe extern "C" fn(i32) = std::mem::transmute(t);
                    out.push(Cblas {
                        name: "OpenBLAS",
                        soname: "libopenblas.so.0",
                        sgemm: std::mem::transmute::<*mut libc::c_void, CblasSgemm>(g),
                        set_threads: Box::new(move |n| t(n as i32)),
                    });
                }
            }
            if let Some(h) = open("libblis.so.4") {
                if let (Some(g), Some(t)) =
                    (sym(h, "cblas_sgemm"), sym(h, "bli_thread_set_num_threads"))
                {
                    let t: unsafe extern "C" fn(i64) = std::mem::transmute(t);
                    out.push(Cblas {
                        name: "BLIS",
                        soname: "libblis.so.4",
                        sgemm: std::mem::transmute::<*mut libc::c_void, CblasSgemm>(g),
                        set_threads: Box::new(move |n| t(n as i64)),
                    });
                }
            }
        }
        out
    }
    #[cfg(not(unix))]
    fn available() -> Vec<Cblas> {
        Vec::new()
    }
}

/// One sgemm implementation as the ceiling calls it: row-major
/// `c = a · b` (`m×k`, `k×n`), `threads` its own threads (1: the caller's).
type Sgemm<'a> = dyn Fn((usize, usize, usize), &[f32], &[f32], &mut [f32], usize) + Sync + 'a;

fn gemm_crate(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) {
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: row-major m×k, k×n and m×n buffers with matching strides
    // (the callers pass slices at least that long).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// GFLOP/s of `f` on each ceiling shape, best of `reps` (after one warm-up):
/// `threads` of the library's own (`Threaded`), or — as this project's
/// convolutions call it — the `n` columns cut into 8 pieces, each a
/// single-threaded call, run over rayon's pool of `threads` (`Pieces`).
fn ceiling_of(f: &Sgemm<'_>, threads: usize, pieces: bool, reps: usize) -> Vec<f64> {
    CEILING_SHAPES
        .iter()
        .map(|&(m, k, n)| {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
            let bm: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
            let mut best = f64::INFINITY;
            if pieces {
                // Column pieces: piece p's b and c are n/8-column blocks,
                // stored contiguously (as an im2col tile is).
                let np = n.div_ceil(8);
                let bs: Vec<Vec<f32>> = (0..8).map(|_| bm[..k * np].to_vec()).collect();
                let mut cs: Vec<Vec<f32>> = (0..8).map(|_| vec![0.0f32; m * np]).collect();
                for _ in 0..reps + 1 {
                    let t = Instant::now();
                    use rayon::prelude::*;
                    cs.par_iter_mut()
                        .zip(&bs)
                        .for_each(|(c, b)| f((m, np, k), &a, b, c, 1));
                    best = best.min(t.elapsed().as_secs_f64());
                }
                2.0 * (m * k * np * 8) as f64 / best / 1e9
            } else {
                let mut c = vec![0.0f32; m * n];
                for _ in 0..reps + 1 {
                    let t = Instant::now();
                    f((m, n, k), &a, &bm, &mut c, threads);
                    best = best.min(t.elapsed().as_secs_f64());
                }
                2.0 * (m * k * n) as f64 / best / 1e9
            }
        })
        .collect()
}

/// The sgemm ceiling: the `gemm` crate (the one candle and our convolutions
/// use) and every CBLAS library found (OpenBLAS, BLIS), threaded and in
/// pieces, at [`CEILING_SHAPES`]; the best figure and which library set it.
fn gemm_ceiling(threads: usize, reps: usize) -> serde_json::Value {
    let libs = Cblas::available();
    let mut rows = Vec::new();
    let mut best = (0.0f64, String::from("gemm"));
    let mut measure = |name: &str, f: &Sgemm<'_>, set: &dyn Fn(usize)| {
        for pieces in [false, true] {
            set(if pieces { 1 } else { threads });
            let g = ceiling_of(f, threads, pieces, reps);
            for &v in &g {
                if v > best.0 {
                    best = (v, name.to_string());
                }
            }
            rows.push(serde_json::json!({"library": name,
                "mode": if pieces { "pieces" } else { "threaded" }, "gflops": g}));
        }
    };
    measure("gemm", &gemm_crate, &|_| {});
    for lib in &libs {
        let sgemm = lib.sgemm;
        let f = move |(m, n, k): (usize, usize, usize),
                      a: &[f32],
                      b: &[f32],
                      c: &mut [f32],
                      _threads: usize| {
            // SAFETY: row-major m×k, k×n, m×n buffers, leading dimensions k,
            // n, n; the library writes only c.
            unsafe {
                sgemm(
                    CBLAS_ROW_MAJOR,
                    CBLAS_NO_TRANS,
                    CBLAS_NO_TRANS,
                    m as i32,
                    n as i32,
                    k as i32,
                    1.0,
                    a.as_ptr(),
                    k as i32,
                    b.as_ptr(),
                    n as i32,
                    0.0,
                    c.as_mut_ptr(),
                    n as i32,
                )
            }
        };
        measure(lib.name, &f, &*lib.set_threads);
    }
    let shapes: Vec<_> = CEILING_SHAPES
        .iter()
        .map(|&(m, k, n)| serde_json::json!({"m": m, "k": k, "n": n}))
        .collect();
    serde_json::json!({"backend": "gemm", "threads": threads, "shapes": shapes,
        "libraries": rows, "best_gflops": best.0, "best_library": best.1,
        "loaded": libs.iter().map(|l| l.soname).collect::<Vec<_>>()})
}

struct Args {
    backend: Option<String>,
    sizes: Vec<(usize, usize)>,
    threads: usize,
    warmup: usize,
    reps: Option<usize>,
    to_loss: Option<usize>,
    target: Option<f64>,
    gemm: bool,
    list: bool,
    json: bool,
    write_images: Option<std::path::PathBuf>,
    stats: bool,
    device: Option<String>,
}

fn parse_size(s: &str) -> (usize, usize) {
    let (w, h) = s.split_once('x').expect("sizes look like 256x192");
    (
        w.trim().parse().expect("width"),
        h.trim().parse().expect("height"),
    )
}

fn parse_args() -> Args {
    let env = |k: &str| std::env::var(k).ok();
    let mut a = Args {
        backend: None,
        sizes: env("SIZES")
            .unwrap_or_else(|| "128x96,256x192".into())
            .split(',')
            .map(parse_size)
            .collect(),
        threads: env("THREADS").and_then(|t| t.parse().ok()).unwrap_or(2),
        warmup: 1,
        reps: None,
        to_loss: None,
        target: None,
        gemm: false,
        list: false,
        json: false,
        write_images: None,
        stats: false,
        device: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => a.backend = Some(value()),
            "--size" | "--sizes" => a.sizes = value().split(',').map(parse_size).collect(),
            "--threads" => a.threads = value().parse().expect("--threads N"),
            "--warmup" => a.warmup = value().parse().expect("--warmup N"),
            "--reps" => a.reps = Some(value().parse().expect("--reps N")),
            "--to-loss" => a.to_loss = Some(value().parse().expect("--to-loss ITERATIONS")),
            "--target" => a.target = Some(value().parse().expect("--target LOSS")),
            "--gemm-ceiling" => a.gemm = true,
            "--list" => a.list = true,
            "--json" => a.json = true,
            "--write-images" => a.write_images = Some(value().into()),
            "--stats" => a.stats = true,
            "--device" => a.device = Some(value()),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument `{other}`"),
        }
    }
    a
}

fn main() -> Result<()> {
    neural_style::tune_allocator();
    let a = parse_args();
    if a.list {
        let names: Vec<&str> = backends::list()
            .into_iter()
            .filter(|b| b.enabled)
            .map(|b| b.name)
            .collect();
        println!("{}", serde_json::json!(names));
        return Ok(());
    }
    if let Some(dir) = &a.write_images {
        // The same procedural images as files, for whole-CLI timings
        // (`cargo xtask bench`, xtask/src/pastiche.rs).
        let &(w, h) = a.sizes.first().expect("a size");
        std::fs::create_dir_all(dir).map_err(|e| neural_style::core::Error::io(dir, e))?;
        for kind in ["content", "style"] {
            let path = dir.join(format!("{kind}.png"));
            Picture::from_caffe(&procedural(kind, w, h)).save(&path)?;
        }
        println!(
            "{}",
            serde_json::json!({"dir": dir, "width": w, "height": h})
        );
        return Ok(());
    }
    backends::set_threads(a.threads)?;
    if a.gemm {
        println!("{}", gemm_ceiling(a.threads, a.reps.unwrap_or(5)));
        return Ok(());
    }
    let weights = match weights::locate(None)? {
        Some(p) => Vgg19Weights::load(&p)?,
        None => Vgg19Weights::synthetic(0, VGG19_WIDTHS),
    };
    let names: Vec<String> = match &a.backend {
        Some(b) => vec![b.clone()],
        None => backends::list()
            .into_iter()
            .filter(|b| b.enabled)
            .map(|b| b.name.to_string())
            .collect(),
    };
    if !a.json {
        println!("weights: {}", weights.origin);
        println!("| backend | device | size | median s/iter | min | max | peak RSS MB |");
        println!("|---|---|---|---|---|---|---|");
    }
    for name in names {
        for &(w, h) in &a.sizes {
            let mode = match a.to_loss {
                _ if a.stats => Mode::Stats,
                Some(iters) => Mode::ToLoss {
                    iters,
                    target: a.target,
                },
                None => Mode::Time {
                    warmup: a.warmup,
                    reps: a.reps.unwrap_or(if w * h > 100_000 { 3 } else { 5 }),
                },
            };
            let sel = Selection {
                name: name.clone(),
                device: a.device.clone(),
            };
            let case = Case {
                weights: &weights,
                w,
                h,
                mode,
            };
            let m = backends::dispatch(&sel, case)?;
            let mut t = m.times.clone();
            t.sort_by(f64::total_cmp);
            let median = t.get(t.len() / 2).copied().unwrap_or(f64::NAN);
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"backend": name, "device": m.device, "width": w,
                        "height": h, "threads": a.threads, "times": m.times,
                        "median_s": median, "curve": m.curve, "stats": m.stats,
                        "peak_rss_mb": peak_rss_mb(), "weights": weights.origin})
                );
            } else {
                if let Some(stats) = &m.stats {
                    println!("{name} {w}×{h} counters: {stats}");
                }
                println!(
                    "| {name} | {} | {w}×{h} | {median:.3} | {:.3} | {:.3} | {:.0} |",
                    m.device,
                    t.first().unwrap_or(&f64::NAN),
                    t.last().unwrap_or(&f64::NAN),
                    peak_rss_mb()
                );
            }
        }
    }
    Ok(())
}
