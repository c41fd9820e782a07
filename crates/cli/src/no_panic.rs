//! No input makes the tool panic: a seeded property test that feeds randomly
//! corrupted PNG, JPEG, safetensors, config TOML and jobs TOML files through
//! their loaders, and random content and style sizes (1–64 px) with random
//! `--size`, `--style-size`, pooling and layers through the preflight and,
//! when it passes, the whole pipeline (a small synthetic VGG19, 2 iterations,
//! the default backend). Every case must return (Ok or a one-line error);
//! a panic fails the test with the seed and case that caused it.

//!
//! A unit test of the binary's crate: it reaches the batch planner and the
//! main job's runner, which are the binary's own.

use crate::batch::plan as batch;
use crate::commands::paint::StyleJob;
use image::{Rgb, RgbImage};
use neural_style::backends::dispatch;
use neural_style::core::image_io::Picture;
use neural_style::core::rng::Rng;
use neural_style::core::run::Silent;
use neural_style::options::{self as settings, StyleArgs};
use neural_style::run::{self as job, preflight};
use neural_style_weights::{Vgg19Weights, WeightsFile};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const SEED: u64 = 0x5eed_0010;

/// A random corruption of `bytes`: flipped bytes, a cut, a zeroed run,
/// inserted garbage or a repeated chunk.
fn corrupt(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let n = b.len().max(1);
    let at = |rng: &mut Rng| (rng.next_u64() as usize) % n;
    match rng.next_u64() % 5 {
        0 => {
            for _ in 0..1 + rng.next_u64() % 8 {
                let i = at(rng).min(b.len().saturating_sub(1));
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << (rng.next_u64() % 8);
                }
            }
        }
        1 => b.truncate(at(rng)),
        2 => {
            let i = at(rng).min(b.len());
            let end = (i + 1 + (rng.next_u64() as usize) % 64).min(b.len());
            b[i..end].fill(0);
        }
        3 => {
            let i = at(rng).min(b.len());
            let junk: Vec<u8> = (0..1 + rng.next_u64() % 32)
                .map(|_| rng.next_u64() as u8)
                .collect();
            b.splice(i..i, junk);
        }
        _ => {
            let i = at(rng).min(b.len());
            let end = (i + (rng.next_u64() as usize) % 64).min(b.len());
            let chunk = b[i..end].to_vec();
            b.splice(i..i, chunk);
        }
    }
    b
}

/// Runs `f`, recording a panic as a failure named `what`.
fn no_panic(failures: &mut Vec<String>, what: String, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        failures.push(what);
    }
}

fn image(rng: &mut Rng, w: u32, h: u32) -> RgbImage {
    let mut v = || rng.next_u64() as u8;
    let (a, b, c) = (v(), v(), v());
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            a.wrapping_add((x * 9) as u8),
            b.wrapping_add((y * 5) as u8),
            c ^ ((x + y) as u8),
        ])
    })
}

#[test]
fn no_input_makes_it_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng::new(SEED);
    let mut failures = Vec::new();
    let quiet_panics = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    // Corrupted images, through the full loader and the header probe.
    let pic = image(&mut rng, 24, 18);
    pic.save(d.join("good.png")).unwrap();
    pic.save(d.join("good.jpg")).unwrap();
    for name in ["good.png", "good.jpg"] {
        let good = std::fs::read(d.join(name)).unwrap();
        for case in 0..150 {
            let path = d.join(format!("bad_{case}_{name}"));
            std::fs::write(&path, corrupt(&mut rng, &good)).unwrap();
            no_panic(&mut failures, format!("{name} case {case}"), || {
                let _ = Picture::probe(&path);
                let _ = Picture::load(&path);
            });
        }
    }

    // Corrupted weights.
    let w = Vgg19Weights::synthetic(1, [4, 4, 4, 4, 4]);
    let good = w.to_safetensors_bytes();
    for case in 0..150 {
        let bytes = corrupt(&mut rng, &good);
        no_panic(&mut failures, format!("safetensors case {case}"), || {
            let _ = Vgg19Weights::from_safetensors_bytes(&bytes, Path::new("w.safetensors"));
        });
    }

    // Corrupted config and jobs files.
    let config =
        "preset = \"gatys\"\nsize = 48\nstyle-weight = 50\nstyle-layers = \"relu1_1,relu2_1\"\n\
                  scales = [16, 32]\nstyle-mask = [\"m.png\", \"none\"]\noriginal-colors = true\n";
    let jobs = "contents = [\"c.png\", \"x/c.png\"]\nstyles = [\"s.png\"]\noutput-dir = \"out\"\n\
                format = \"jpg\"\n\n[defaults]\nsize = 32\niterations = 2\n\n\
                [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\", \"s.png\"]\noutput = \"o.png\"\n\
                style-blend-weights = [1, 3]\n";
    for case in 0..200 {
        let cfg = d.join("cfg.toml");
        std::fs::write(&cfg, corrupt(&mut rng, config.as_bytes())).unwrap();
        no_panic(&mut failures, format!("config case {case}"), || {
            if let Ok(a) = settings::load_config(&cfg) {
                let mut a = a.under(&StyleArgs::default());
                a.content.get_or_insert("c.png".into());
                let _ = a.resolve();
            }
        });
        let file = d.join("jobs.toml");
        std::fs::write(&file, corrupt(&mut rng, jobs.as_bytes())).unwrap();
        no_panic(&mut failures, format!("jobs case {case}"), || {
            if let Ok(j) = batch::plan(&file, &StyleArgs::default(), true) {
                let _ = batch::check(&file, &j, true);
            }
        });
    }

    // Random sizes through the preflight and, when it passes, the whole run.
    neural_style::backends::set_threads(2).unwrap();
    let wpath = d.join("synthetic.safetensors");
    w.save_safetensors(&wpath).unwrap();
    let (mut ran, mut refused) = (0, 0);
    for case in 0..40 {
        let side = |rng: &mut Rng| 1 + (rng.next_u64() % 64) as u32;
        let (cw, ch, sw, sh) = (
            side(&mut rng),
            side(&mut rng),
            side(&mut rng),
            side(&mut rng),
        );
        image(&mut rng, cw, ch).save(d.join("c.png")).unwrap();
        image(&mut rng, sw, sh).save(d.join("s.png")).unwrap();
        let mut a = StyleArgs {
            content: Some(d.join("c.png")),
            style: vec![d.join("s.png")],
            size: Some(side(&mut rng)),
            iterations: Some(2),
            weights: Some(wpath.clone()),
            ..Default::default()
        };
        if rng.next_u64() % 3 == 0 {
            a.style_size = Some(side(&mut rng));
        }
        if rng.next_u64() % 2 == 0 {
            a.pooling = Some(settings::PoolingName::Avg);
        }
        if rng.next_u64() % 3 == 0 {
            a.style_layers = Some("relu1_1,relu2_1".into());
            a.content_layers = Some("relu2_2".into());
        }
        let what = format!("run case {case}: content {cw}×{ch}, style {sw}×{sh}, {a:?}");
        no_panic(&mut failures, what, || {
            let Ok(s) = a.resolve() else { return };
            if preflight::check_run(&s, Vec::new(), &[]).is_err() {
                refused += 1;
                return;
            }
            // Past the preflight, errors are allowed (not expected); panics are not.
            let Ok(sources) = job::load_sources(&s) else {
                return;
            };
            let Ok(inputs) = sources.at(&s, s.size()) else {
                return;
            };
            let Ok(init) = job::initial_image(&s, &inputs.content) else {
                return;
            };
            let stop = std::sync::atomic::AtomicBool::new(false);
            let r = dispatch(
                &s.selection(),
                StyleJob {
                    settings: &s,
                    weights: &w,
                    sources: &sources,
                    init,
                    observer: &mut Silent,
                    interrupt: &stop,
                    on_ready: &mut |_, _| {},
                    output: std::path::Path::new("unused.png"),
                    checkpoint_every: None,
                    log: &mut |_| {},
                },
            );
            if r.is_ok() {
                ran += 1;
            }
        });
    }
    std::panic::set_hook(quiet_panics);
    assert!(
        failures.is_empty(),
        "panics (seed {SEED:#x}): {failures:#?}"
    );
    // Both branches were exercised.
    assert!(ran > 0 && refused > 0, "ran {ran}, refused {refused}");
}
