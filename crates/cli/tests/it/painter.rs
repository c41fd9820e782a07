//! The library API end to end on the real weights: the `Painter` paints the
//! same image, byte for byte, as the `neural-style` binary given the same
//! options and files; its callback sees every iteration, previews the
//! image and stops the run; errors name the input.

use image::{Rgb, RgbImage};
use neural_style::{Options, Painter, Preset};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_neural-style");

fn content() -> RgbImage {
    RgbImage::from_fn(48, 40, |x, y| {
        Rgb([(x * 5) as u8, (y * 6) as u8, ((x * y) % 256) as u8])
    })
}

fn style() -> RgbImage {
    RgbImage::from_fn(40, 48, |x, y| {
        Rgb([
            ((x * 37) % 256) as u8,
            ((y * 11) % 256) as u8,
            ((x ^ y) * 9 % 256) as u8,
        ])
    })
}

/// Options of a tiny run (two threads, as the binary is given).
fn tiny() -> Options {
    Options {
        size: 32,
        iterations: 4,
        seed: 3,
        threads: Some(2),
        ..Options::default()
    }
}

/// `painter`'s image for `o` from the in-memory content and style.
fn paint_in_memory(painter: Painter<'_>, o: &Options) -> neural_style::Painting {
    painter
        .content(content())
        .unwrap()
        .style(style())
        .unwrap()
        .options(o.clone())
        .paint()
        .unwrap()
}

/// The binary's image for `o` from `dir`'s c.png and s.png, with `extra` flags.
fn paint_cli(dir: &Path, o: &Options, out: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "-c".to_string(),
        "c.png".into(),
        "-s".into(),
        "s.png".into(),
        "-o".into(),
        out.into(),
        "-q".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(o.to_cli_args());
    let run = Command::new(BIN)
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(dir.join(out)).unwrap()
}

#[test]
fn painter_and_cli_paint_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    content().save(d.join("c.png")).unwrap();
    style().save(d.join("s.png")).unwrap();
    let cases = [
        Options {
            init: Some(neural_style::options::InitName::Noise),
            ..tiny()
        },
        Options {
            size: 40,
            iterations: 2,
            multires: true,
            original_colors: true,
            threads: Some(2),
            ..Options::preset(Preset::Gatys)
        },
    ];
    for (k, o) in cases.iter().enumerate() {
        let cli = paint_cli(d, o, &format!("cli{k}.png"), &[]);
        // From the same files…
        let mut seen = 0;
        let painting = Painter::with_default_backend()
            .content(d.join("c.png"))
            .unwrap()
            .style(d.join("s.png"))
            .unwrap()
            .options(o.clone())
            .on_iteration(|p| {
                seen += 1;
                assert_eq!(p.iteration, seen);
                assert!(p.loss.total.is_finite());
                ControlFlow::Continue(())
            })
            .paint()
            .unwrap();
        assert_eq!(seen, o.scales().unwrap().iter().map(|s| s.1).sum::<usize>());
        assert!(!painting.stopped);
        let lib = d.join(format!("lib{k}.png"));
        painting.save(&lib).unwrap();
        assert!(cli == std::fs::read(&lib).unwrap(), "case {k} differs");
        // …and from the same pixels in memory.
        let in_memory = paint_in_memory(Painter::new("candle").unwrap(), o);
        assert!(in_memory.image == painting.image, "case {k}: in memory");
    }
}

#[test]
fn the_callback_previews_and_stops() {
    let mut previews = Vec::new();
    let painting = Painter::with_default_backend()
        .content(content())
        .unwrap()
        .style(style())
        .unwrap()
        .options(Options {
            iterations: 50,
            ..tiny()
        })
        .on_iteration(|p| {
            previews.push(p.preview().unwrap());
            if p.iteration == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .paint()
        .unwrap();
    assert!(painting.stopped);
    assert_eq!(painting.iterations, 3);
    assert_eq!(previews.len(), 3);
    assert_eq!(previews[0].dimensions(), painting.image.dimensions());
    assert_eq!(painting.image.dimensions(), (32, 27));
}

#[test]
fn errors_name_the_input() {
    let e = Painter::new("no-such-backend").err().unwrap().to_string();
    assert!(e.contains("no-such-backend"), "{e}");
    let e = Painter::with_default_backend()
        .content("/nonexistent/photo.jpg")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/photo.jpg"), "{e}");
    let e = Painter::with_default_backend()
        .content(content())
        .unwrap()
        .paint()
        .unwrap_err()
        .to_string();
    assert!(e.contains("style"), "{e}");
}

#[test]
fn library_errors_name_options_by_their_key_never_a_flag() {
    let e = Options {
        size: 0,
        ..Options::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert_eq!(e, "size: must be at least 1 pixel");
    let e = Options {
        multires: true,
        scales: Some(vec![8, 16]),
        ..Options::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert_eq!(e, "multires: give either `multires` or `scales`, not both");
    // Found while preparing: the content is too small for relu5_1 at 8 px.
    let e = Painter::with_default_backend()
        .content(content())
        .unwrap()
        .style(style())
        .unwrap()
        .options(Options { size: 8, ..tiny() })
        .paint()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("size: ") && e.contains("use `size` "), "{e}");
    assert!(!e.contains("--"), "{e}");
}

/// Left half white: the style applies there only.
fn half_mask() -> RgbImage {
    RgbImage::from_fn(
        24,
        20,
        |x, _| {
            if x < 12 {
                Rgb([255; 3])
            } else {
                Rgb([0; 3])
            }
        },
    )
}

#[test]
fn masked_styles_paint_as_the_cli_and_a_black_mask_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    content().save(d.join("c.png")).unwrap();
    style().save(d.join("s.png")).unwrap();
    half_mask().save(d.join("m.png")).unwrap();
    let o = tiny();
    let cli = paint_cli(d, &o, "cli.png", &["--style-mask", "m.png"]);
    let masked = |mask: RgbImage| {
        Painter::with_default_backend()
            .content(content())?
            .style_masked(style(), mask)?
            .options(o.clone())
            .paint()
    };
    let painting = masked(half_mask()).unwrap();
    let cli = image::load_from_memory(&cli).unwrap().to_rgb8();
    assert!(
        painting.image == cli,
        "the masked painting differs from the CLI's"
    );
    // The mask changes the image: it is not ignored.
    let unmasked = paint_in_memory(Painter::with_default_backend(), &o);
    assert!(unmasked.image != painting.image);
    let e = masked(RgbImage::new(24, 20)).unwrap_err().to_string();
    assert!(
        e.contains("the mask of style image 1") && e.contains("all black"),
        "{e}"
    );
}
