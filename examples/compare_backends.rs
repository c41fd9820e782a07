//! The same job on every backend this build has: the time each takes and
//! the largest pixel difference from the first.
//!
//! `cargo run --release --example compare_backends --features tch,cuda -- [CONTENT STYLE] [--size PX] [--iterations N]`
//!
//! Without images it uses two it makes itself. The cuda backend runs on its
//! default GPU, or on `--device host` (its kernels on the CPU) when there is
//! none; `NEURAL_STYLE_CUDA_DEVICE` chooses another device.

use image::{Rgb, RgbImage};
use neural_style::{backends, load_weights, ImageSource, Options, Painter};
use std::sync::Arc;
use std::time::Instant;

/// One backend's result.
struct Row {
    backend: &'static str,
    device: String,
    seconds: f64,
    best_loss: f64,
    image: RgbImage,
}

fn main() -> neural_style::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = compare(&args)?;
    println!(
        "{:<8} {:<8} {:>9} {:>12} {:>9}",
        "backend", "device", "seconds", "best loss", "max diff"
    );
    for r in &rows {
        println!(
            "{:<8} {:<8} {:>9.2} {:>12.4e} {:>9}",
            r.backend,
            r.device,
            r.seconds,
            r.best_loss,
            max_difference(&rows[0].image, &r.image)
        );
    }
    Ok(())
}

/// The largest difference of one 8-bit channel between two images.
fn max_difference(a: &RgbImage, b: &RgbImage) -> u8 {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// Paint the job `args` describes on every compiled backend.
fn compare(args: &[String]) -> neural_style::Result<Vec<Row>> {
    let mut options = Options {
        size: 128,
        iterations: 20,
        ..Options::default()
    };
    let mut images: Vec<ImageSource> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--size" => options.size = value() as u32,
            "--iterations" => options.iterations = value(),
            path => images.push(path.into()),
        }
    }
    let (content, style) = match images.as_slice() {
        [c, s] => (c.clone(), s.clone()),
        _ => (
            RgbImage::from_fn(96, 64, |x, y| Rgb([(x * 2) as u8, (y * 3) as u8, 128])).into(),
            RgbImage::from_fn(64, 64, |x, y| {
                Rgb([((x / 8 + y / 8) % 2 * 200) as u8, 60, (x * 4) as u8])
            })
            .into(),
        ),
    };
    let weights = Arc::new(load_weights(&options)?);
    let mut rows = Vec::new();
    for b in backends::list().into_iter().filter(|b| b.enabled) {
        let devices: Vec<Option<String>> = match b.name {
            "cuda" => match std::env::var("NEURAL_STYLE_CUDA_DEVICE") {
                Ok(d) => vec![Some(d)],
                Err(_) => vec![None, Some("host".into())],
            },
            _ => vec![None],
        };
        let mut last_error = None;
        for device in devices {
            let mut painter = Painter::new(b.name)?;
            if let Some(d) = &device {
                painter = painter.device(d);
            }
            let start = Instant::now();
            let painted = painter
                .content(content.clone())?
                .style(style.clone())?
                .options(options.clone())
                .weights(weights.clone())
                .paint();
            match painted {
                Ok(p) => {
                    rows.push(Row {
                        backend: b.name,
                        device: device.unwrap_or_else(|| "default".into()),
                        seconds: start.elapsed().as_secs_f64(),
                        best_loss: p.best_loss,
                        image: p.image,
                    });
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    /// Runs in `cargo xtask test` (`cargo test --examples`) at a tiny size,
    /// on every backend of that build.
    #[test]
    fn compares_every_backend_at_a_tiny_size() {
        let args = ["--size", "24", "--iterations", "2"].map(String::from);
        let rows = super::compare(&args).unwrap();
        let enabled = neural_style::backends::list()
            .into_iter()
            .filter(|b| b.enabled)
            .count();
        assert_eq!(rows.len(), enabled);
        for r in &rows {
            assert!(r.best_loss.is_finite(), "{}", r.backend);
            assert_eq!(r.image.dimensions(), rows[0].image.dimensions());
        }
        assert_eq!(super::max_difference(&rows[0].image, &rows[0].image), 0);
    }
}
