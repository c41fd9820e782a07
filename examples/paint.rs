//! Paint with the library: `cargo run --release --example paint -- CONTENT STYLE OUTPUT [SIZE [ITERATIONS]]`.
//!
//! Without arguments it paints two images it makes itself (a gradient and a
//! pattern) into `painted.png` at 64 px, so that it runs anywhere.

use image::{Rgb, RgbImage};
use neural_style::{ImageSource, Options, Painter};
use std::ops::ControlFlow;
use std::path::PathBuf;

fn main() -> neural_style::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (content, style, output): (ImageSource, ImageSource, PathBuf) = match args.as_slice() {
        [c, s, o, ..] => (c.as_str().into(), s.as_str().into(), o.into()),
        _ => (
            RgbImage::from_fn(96, 64, |x, y| Rgb([(x * 2) as u8, (y * 3) as u8, 128])).into(),
            RgbImage::from_fn(64, 64, |x, y| {
                Rgb([((x / 8 + y / 8) % 2 * 200) as u8, 60, (x * 4) as u8])
            })
            .into(),
            "painted.png".into(),
        ),
    };
    let number = |i: usize, default: usize| {
        args.get(i)
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let options = Options {
        size: number(3, 64) as u32,
        iterations: number(4, 20),
        ..Options::default()
    };
    let painting = Painter::with_default_backend()
        .content(content)?
        .style(style)?
        .options(options)
        .on_iteration(|p| {
            if p.iteration % 10 == 0 || p.iteration == p.of {
                eprintln!(
                    "iteration {}/{}: loss {:.4e} ({:.1} s)",
                    p.iteration,
                    p.of,
                    p.loss.total,
                    p.elapsed.as_secs_f64()
                );
            }
            ControlFlow::Continue(())
        })
        .paint()?;
    painting.save(&output)?;
    println!(
        "wrote {} (best loss {:.4e}, {} iterations)",
        output.display(),
        painting.best_loss,
        painting.iterations
    );
    Ok(())
}
