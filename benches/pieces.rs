//! divan benches of the pieces of one iteration, per compiled backend, at
//! 128×96 and 256×192: the forward pass to relu5_1 (keeping what the backward
//! needs), the backward pass, the five style Gram matrices with their
//! backward, and one L-BFGS update.
//!
//!     cargo bench --bench pieces                  # THREADS=2 by default
//!
//! Every bench is generic over [`Backend`] and takes the backend's name as its
//! argument: a backend compiled into this build (`backends::list()`) is
//! benched with no change here.

use divan::Bencher;
use neural_style::backends::{self, Selection, WithBackend};
use neural_style::core::backend::Backend;
use neural_style::core::layers::{LayerId, VGG19_WIDTHS};
use neural_style::core::objective::{Loss, Objective, ObjectiveSpec};
use neural_style::core::optim::{Lbfgs, LbfgsConfig, Optimizer};
use neural_style::core::pixel::CaffeImage;
use neural_style::core::vgg::Vgg;
use neural_style::core::Result;
use neural_style_weights::{self as weights, Vgg19Weights, WeightsFile};
use std::sync::OnceLock;

const SIZES: &[(usize, usize)] = &[(128, 96), (256, 192)];

fn weights() -> &'static Vgg19Weights {
    static W: OnceLock<Vgg19Weights> = OnceLock::new();
    W.get_or_init(|| match weights::locate(None).ok().flatten() {
        Some(p) => Vgg19Weights::load(&p).expect("weights load"),
        None => Vgg19Weights::synthetic(0, VGG19_WIDTHS),
    })
}

/// `backend@WxH` for every enabled backend and size.
fn cases() -> Vec<String> {
    backends::list()
        .into_iter()
        .filter(|b| b.enabled)
        .flat_map(|b| {
            SIZES
                .iter()
                .map(move |(w, h)| format!("{}@{w}x{h}", b.name))
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Piece {
    Forward,
    Backward,
    Gram,
    LbfgsStep,
}

struct Job<'a, 'b> {
    bencher: Bencher<'a, 'b>,
    piece: Piece,
    w: usize,
    h: usize,
}

impl WithBackend for Job<'_, '_> {
    type Output = ();
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<()> {
        let (w, h) = (self.w, self.h);
        let net = Vgg::new(backend, weights(), Default::default())?;
        let content = CaffeImage::noise(w, h, 1);
        let style = CaffeImage::noise(w, h, 2);
        let spec = ObjectiveSpec::default();
        let objective = Objective::new(&net, spec.clone(), &content, &[(style, 1.0)])?;
        let b = net.backend();
        let x = b.upload(&CaffeImage::noise(w, h, 3).data, [3, h, w])?;
        let layers = spec.layers();
        let style_layers: Vec<LayerId> = spec.style_layers.iter().map(|l| l.0).collect();
        let sync = || b.synchronize().expect("synchronize");
        match self.piece {
            Piece::Forward => self.bencher.bench_local(|| {
                let t = net.forward(&x, &layers, true).expect("forward");
                sync();
                t
            }),
            Piece::Backward => {
                let trace = net.forward(&x, &layers, true)?;
                // Unit gradients at every requested layer (the cost does not depend on values).
                let grads: Vec<_> = layers
                    .iter()
                    .zip(&trace.outputs)
                    .map(|(l, f)| {
                        let ones = vec![1.0f32; f32_len(b, f)];
                        (*l, b.upload(&ones, b.dims(f)).expect("upload"))
                    })
                    .collect();
                self.bencher.bench_local(|| {
                    let g = net.backward(&trace, grads.clone()).expect("backward");
                    sync();
                    g
                })
            }
            Piece::Gram => {
                let feats = net.forward(&x, &style_layers, false)?.outputs;
                self.bencher.bench_local(|| {
                    for f in &feats {
                        let g = b.gram(f).expect("gram");
                        b.gram_backward(f, &g).expect("gram backward");
                    }
                    sync();
                })
            }
            Piece::LbfgsStep => {
                // Ten real iterations fill the history; then updates alternate
                // between the last two real gradients.
                let mut opt = Lbfgs::new(LbfgsConfig::default());
                let mut xs = x.clone();
                let mut last = Vec::new();
                for _ in 0..10 {
                    let (loss, g) = objective.evaluate(&xs)?;
                    opt.update(b, &mut xs, loss.total, &g)?;
                    last.push((loss.total, g));
                }
                let (fa, ga) = last.swap_remove(8);
                let (fb, gb) = last.swap_remove(8);
                let mut flip = false;
                self.bencher.bench_local(|| {
                    flip = !flip;
                    let (f, g) = if flip { (fa, &ga) } else { (fb, &gb) };
                    opt.update(b, &mut xs, f, g).expect("update");
                    sync();
                })
            }
        }
        Ok(())
    }
}

fn f32_len<B: Backend>(b: &B, t: &B::Tensor) -> usize {
    b.dims(t).iter().product()
}

fn bench(bencher: Bencher, case: &str, piece: Piece) {
    let (name, size) = case.split_once('@').expect("backend@WxH");
    let (w, h) = size.split_once('x').expect("WxH");
    let sel = Selection {
        name: name.into(),
        device: None,
    };
    let job = Job {
        bencher,
        piece,
        w: w.parse().expect("width"),
        h: h.parse().expect("height"),
    };
    backends::dispatch(&sel, job).expect("bench runs");
}

#[divan::bench(args = cases(), sample_count = 10, sample_size = 1)]
fn forward(bencher: Bencher, case: &str) {
    bench(bencher, case, Piece::Forward);
}

#[divan::bench(args = cases(), sample_count = 10, sample_size = 1)]
fn backward(bencher: Bencher, case: &str) {
    bench(bencher, case, Piece::Backward);
}

#[divan::bench(args = cases(), sample_count = 10, sample_size = 1)]
fn gram_and_backward(bencher: Bencher, case: &str) {
    bench(bencher, case, Piece::Gram);
}

#[divan::bench(args = cases(), sample_count = 20, sample_size = 1)]
fn lbfgs_update(bencher: Bencher, case: &str) {
    bench(bencher, case, Piece::LbfgsStep);
}

fn main() {
    neural_style::tune_allocator();
    let threads = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    backends::set_threads(threads).expect("threads");
    divan::main();
}
