//! Paint with the library:
//! `cargo run --release --example paint -- CONTENT STYLE OUTPUT [SIZE [ITERATIONS]]`.
//!
//! Without arguments it paints two images it makes itself (a gradient and a
//! checkerboard) into `painted.png` at 64 px, so that it runs anywhere.

use image::{Rgb, RgbImage};
use neural_style::{ImageSource, Options, Painter, Painting};
use std::ops::ControlFlow;
use std::path::PathBuf;

fn main() -> neural_style::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (output, painting) = paint(&args)?;
    println!(
        "wrote {} (best loss {:.4e}, {} iterations)",
        output.display(),
        painting.best_loss,
        painting.iterations
    );
    Ok(())
}

/// Paint what `args` says and save it; returns where, and the painting.
fn paint(args: &[String]) -> neural_style::Result<(PathBuf, Painting)> {
    let (content, style, output): (ImageSource, ImageSource, PathBuf) = match args {
        [c, s, o, ..] => (c.as_str().into(), s.as_str().into(), o.into()),
        _ => {
            let (c, s) = example_images();
            (c.into(), s.into(), "painted.png".into())
        }
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
    Ok((output, painting))
}

/// A gradient (the "photo") and a checkerboard (the "painting").
fn example_images() -> (RgbImage, RgbImage) {
    (
        RgbImage::from_fn(96, 64, |x, y| Rgb([(x * 2) as u8, (y * 3) as u8, 128])),
        RgbImage::from_fn(64, 64, |x, y| {
            Rgb([((x / 8 + y / 8) % 2 * 200) as u8, 60, (x * 4) as u8])
        }),
    )
}

#[cfg(test)]
mod tests {
    /// Runs in `cargo xtask test` (`cargo test --examples`): files in, a tiny size.
    #[test]
    fn paints_at_a_tiny_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n).display().to_string();
        let (c, s) = super::example_images();
        c.save(path("c.png")).unwrap();
        s.save(path("s.png")).unwrap();
        let args = [
            path("c.png"),
            path("s.png"),
            path("out.jpg"),
            "24".into(),
            "3".into(),
        ];
        let (out, painting) = super::paint(&args).unwrap();
        assert_eq!(painting.iterations, 3);
        assert_eq!(painting.image.dimensions(), (24, 16));
        assert!(image::open(out).is_ok());
    }
}
