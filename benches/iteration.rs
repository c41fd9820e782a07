//! Time per iteration (one evaluation of the canonical objective and its
//! gradient: forward to relu5_1 + backward) for each compiled backend, at the
//! sizes of DESIGN.md's performance facts. Real VGG19 weights when they are
//! present (`cargo xtask weights`), else full-size synthetic ones — the cost
//! depends only on the shapes.
//!
//!     cargo bench --bench iteration            # THREADS=2 SIZES=256x192,512x384 to choose

use neural_style::backends::{self, Selection, WithBackend};
use neural_style::core::backend::Backend;
use neural_style::core::layers::VGG19_WIDTHS;
use neural_style::core::objective::{Loss, Objective, ObjectiveSpec};
use neural_style::core::pixel::CaffeImage;
use neural_style::core::vgg::Vgg;
use neural_style::core::weights::{self, Vgg19Weights};
use neural_style::core::Result;
use std::time::Instant;

struct Bench<'a> {
    weights: &'a Vgg19Weights,
    w: usize,
    h: usize,
    reps: usize,
}

impl WithBackend for Bench<'_> {
    type Output = (Vec<f64>, String);
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<Self::Output> {
        let device = backend.device();
        let net = Vgg::new(backend, self.weights, Default::default())?;
        let content = CaffeImage::noise(self.w, self.h, 1);
        let style = CaffeImage::noise(self.w, self.h, 2);
        let objective = Objective::new(&net, ObjectiveSpec::default(), &content, &[(style, 1.0)])?;
        let b = net.backend();
        let x = b.upload(
            &CaffeImage::noise(self.w, self.h, 3).data,
            [3, self.h, self.w],
        )?;
        objective.evaluate(&x)?; // warm-up
        let mut times = Vec::new();
        for _ in 0..self.reps {
            let t = Instant::now();
            objective.evaluate(&x)?;
            b.synchronize()?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok((times, device))
    }
}

fn main() -> Result<()> {
    neural_style::tune_allocator();
    let threads = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    backends::set_threads(threads)?;
    let sizes = std::env::var("SIZES").unwrap_or_else(|_| "128x96,256x192".into());
    let weights = match weights::locate(None)? {
        Some(p) => Vgg19Weights::load(&p)?,
        None => Vgg19Weights::synthetic(0, VGG19_WIDTHS),
    };
    println!("weights: {}", weights.origin);
    println!("| backend | device | size | median s/iter | min | max |");
    println!("|---|---|---|---|---|---|");
    for b in backends::list().into_iter().filter(|b| b.enabled) {
        for size in sizes.split(',') {
            let (w, h) = size.split_once('x').expect("SIZES like 256x192");
            let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
            let reps = if w * h > 100_000 { 3 } else { 5 };
            let sel = Selection {
                name: b.name.into(),
                device: None,
            };
            let (t, device) = backends::dispatch(
                &sel,
                Bench {
                    weights: &weights,
                    w,
                    h,
                    reps,
                },
            )?;
            println!(
                "| {} | {device} | {w}×{h} | {:.3} | {:.3} | {:.3} |",
                b.name,
                t[t.len() / 2],
                t[0],
                t[t.len() - 1]
            );
        }
    }
    Ok(())
}
