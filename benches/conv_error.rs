//! The candle backend's convolution algorithms layer by layer on the real
//! VGG19 weights: error against an f64 direct convolution and time, forward
//! and input gradient, for im2col + GEMM, Winograd F(2×2, 3×3) and
//! F(4×4, 3×3) (`NEURAL_STYLE_CONV`, read by `CandleConv` at construction);
//! then the whole objective's gradient against core's f64 reference
//! (`testing::conformance` on the parity suite's real-weights cases) for each
//! setting of `NEURAL_STYLE_CONV` given.
//!
//! ```text
//! cargo bench --bench conv_error -- [--size 128x96] [--time 128x96,256x192,512x384] \
//!     [--settings f2,f4,f4:128,f4:256] [--threads 2]
//! ```
//!
//! Inputs: the bundled Tübingen sample (crates/cli/src/serve/assets/samples/)
//! at `--size`, through the network with candle's default path; the input
//! gradient's `dy` is the layer's ReLU mask times seeded Gaussian noise (the
//! sparsity and mixed signs of a real gradient). Errors are `‖a − b‖/‖b‖`.

use neural_style::core::backend::{Backend, Pooling};
use neural_style::core::image_io::Picture;
use neural_style::core::layers::CONVS_PER_BLOCK;
use neural_style::core::pixel::CaffeImage;
use neural_style::core::rng::Rng;
use neural_style::core::testing::{conformance, parity};
use neural_style::core::weights::ConvWeights;
use neural_style_candle::CandleBackend;
use neural_style_weights::{self as weights, Vgg19Weights, WeightsFile};
use rayon::prelude::*;
use std::time::Instant;

type R<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `y[o] = Σ_i k[o][i] ⋆ x[i]` in f64 (no bias), zero padding 1.
fn direct64(x: &[f32], c_in: usize, h: usize, w: usize, k: &[f32], c_out: usize) -> Vec<f64> {
    let mut y = vec![0.0f64; c_out * h * w];
    y.par_chunks_mut(h * w).enumerate().for_each(|(o, yo)| {
        for i in 0..c_in {
            let plane = &x[i * h * w..][..h * w];
            let kk = &k[(o * c_in + i) * 9..][..9];
            for ky in 0..3 {
                for kx in 0..3 {
                    let kv = kk[ky * 3 + kx] as f64;
                    for r in 0..h {
                        let sy = r + ky;
                        if sy < 1 || sy > h {
                            continue;
                        }
                        let src = &plane[(sy - 1) * w..][..w];
                        let dst = &mut yo[r * w..][..w];
                        for (c, d) in dst.iter_mut().enumerate() {
                            let sx = c + kx;
                            if sx >= 1 && sx <= w {
                                *d += kv * src[sx - 1] as f64;
                            }
                        }
                    }
                }
            }
        }
    });
    y
}

/// OIHW → the input gradient's kernel `[i][o][2−kh][2−kw]`.
fn transpose_flip(k: &[f32], o: usize, i: usize) -> Vec<f32> {
    let mut out = vec![0.0; k.len()];
    for oc in 0..o {
        for ic in 0..i {
            for t in 0..9 {
                out[(ic * o + oc) * 9 + (8 - t)] = k[(oc * i + ic) * 9 + t];
            }
        }
    }
    out
}

fn rel(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn set_conv(setting: &str) {
    // Single-threaded here: no other thread reads the environment.
    std::env::set_var("NEURAL_STYLE_CONV", setting);
}

/// Best of `reps` seconds of `f`.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

const ALGORITHMS: [&str; 3] = ["im2col", "f2", "f4"];

/// The input of every convolution up to conv5_1 (index 12), through candle's
/// default path.
fn inputs(b: &CandleBackend, w: &Vgg19Weights, img: &CaffeImage) -> R<Vec<(Vec<f32>, [usize; 3])>> {
    let mut x = b.upload(&img.data, img.shape())?;
    let mut out = Vec::new();
    let mut conv = 0;
    'blocks: for &n in &CONVS_PER_BLOCK {
        for _ in 0..n {
            if conv > 12 {
                break 'blocks;
            }
            out.push((b.download(&x)?, b.dims(&x)));
            let k = b.prepare_conv(&w.convs[conv])?;
            x = b.conv3x3_relu(&x, &k)?;
            conv += 1;
        }
        x = b.pool(&x, Pooling::Max)?;
    }
    Ok(out)
}

fn name(conv: usize) -> String {
    let mut c = conv;
    for (b, &n) in CONVS_PER_BLOCK.iter().enumerate() {
        if c < n {
            return format!("conv{}_{}", b + 1, c + 1);
        }
        c -= n;
    }
    unreachable!()
}

fn parse_size(s: &str) -> (usize, usize) {
    let (w, h) = s.split_once('x').expect("sizes look like 128x96");
    (w.parse().expect("width"), h.parse().expect("height"))
}

fn main() -> R<()> {
    neural_style::tune_allocator();
    let mut size = (128, 96);
    let mut time: Vec<(usize, usize)> = vec![(128, 96)];
    let mut settings: Vec<String> = ["f2", "f4"].map(String::from).to_vec();
    let mut threads = 2;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--size" => size = parse_size(&value()),
            "--time" => time = value().split(',').map(parse_size).collect(),
            "--settings" => settings = value().split(',').map(String::from).collect(),
            "--threads" => threads = value().parse()?,
            "--bench" => {}
            other => panic!("unknown argument `{other}`"),
        }
    }
    neural_style::backends::set_threads(threads)?;
    let Some(path) = weights::locate(None)? else {
        eprintln!("conv_error: no VGG19 weights (cargo xtask weights)");
        std::process::exit(2);
    };
    let vgg = Vgg19Weights::load(&path)?;
    let b = CandleBackend::cpu();
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/cli/src/serve/assets/samples/tubingen.jpg"
    );
    let picture = Picture::load(std::path::Path::new(sample))?;

    println!(
        "## Per layer, real weights, Tübingen {}×{}, {threads} threads\n",
        size.0, size.1
    );
    println!("| layer | C_in→C_out | map | fwd im2col | fwd F(2×2) | fwd F(4×4) | bwd im2col | bwd F(2×2) | bwd F(4×4) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let img = picture.resize_to(size.0 as u32, size.1 as u32).to_caffe();
    set_conv("f2");
    let xs = inputs(&b, &vgg, &img)?;
    let mut rng = Rng::new(7);
    for (conv, (x, [c_in, h, w])) in xs.iter().enumerate() {
        let cw: &ConvWeights = &vgg.convs[conv];
        let c_out = cw.out_channels;
        let want = direct64(x, *c_in, *h, *w, &cw.weight, c_out);
        // dy: the ReLU mask of this layer's output times noise.
        let mask: Vec<bool> = want
            .iter()
            .enumerate()
            .map(|(i, v)| v + cw.bias[i / (h * w)] as f64 > 0.0)
            .collect();
        let dy: Vec<f32> = mask
            .iter()
            .map(|&m| if m { rng.normal() as f32 } else { 0.0 })
            .collect();
        let kt = transpose_flip(&cw.weight, c_out, *c_in);
        let want_dx = direct64(&dy, c_out, *h, *w, &kt, *c_in);
        let xt = b.upload(x, [*c_in, *h, *w])?;
        let dyt = b.upload(&dy, [c_out, *h, *w])?;
        let nobias = ConvWeights {
            bias: vec![0.0; c_out],
            ..cw.clone()
        };
        let mut fwd = Vec::new();
        let mut bwd = Vec::new();
        for alg in ALGORITHMS {
            set_conv(alg);
            let k = b.prepare_conv(&nobias)?;
            fwd.push(rel(&b.download(&b.conv3x3(&xt, &k)?)?, &want));
            bwd.push(rel(&b.download(&b.conv3x3_backward(&dyt, &k)?)?, &want_dx));
        }
        println!(
            "| {} | {c_in}→{c_out} | {w}×{h} | {:.2e} | {:.2e} | {:.2e} | {:.2e} | {:.2e} | {:.2e} |",
            name(conv),
            fwd[0],
            fwd[1],
            fwd[2],
            bwd[0],
            bwd[1],
            bwd[2]
        );
    }

    for &(tw, th) in &time {
        println!("\n## Time per layer (ms, forward + input gradient, best of 3), {tw}×{th}\n");
        println!("| layer | im2col | F(2×2) | F(4×4) | F(4×4)/F(2×2) |");
        println!("|---|---|---|---|---|");
        let img = picture.resize_to(tw as u32, th as u32).to_caffe();
        set_conv("f2");
        let xs = inputs(&b, &vgg, &img)?;
        let mut totals = [0.0f64; 3];
        for (conv, (x, [c_in, h, w])) in xs.iter().enumerate() {
            let cw = &vgg.convs[conv];
            let xt = b.upload(x, [*c_in, *h, *w])?;
            let dyt = b.upload(
                &vec![0.5f32; cw.out_channels * h * w],
                [cw.out_channels, *h, *w],
            )?;
            let mut t = [0.0f64; 3];
            for (a, alg) in ALGORITHMS.iter().enumerate() {
                set_conv(alg);
                let k = b.prepare_conv(cw)?;
                t[a] = best(3, || {
                    b.conv3x3_relu(&xt, &k).expect("conv");
                    b.conv3x3_backward(&dyt, &k).expect("conv backward");
                });
                totals[a] += t[a];
            }
            println!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                name(conv),
                1e3 * t[0],
                1e3 * t[1],
                1e3 * t[2],
                t[2] / t[1]
            );
        }
        println!(
            "| **all** | {:.1} | {:.1} | {:.1} | {:.2} |",
            1e3 * totals[0],
            1e3 * totals[1],
            1e3 * totals[2],
            totals[2] / totals[1]
        );
    }

    println!("\n## The objective on the real weights against core's f64 reference\n");
    println!("(`testing::conformance::compare` on `testing::parity::real_cases`; tolerances: activations {:.0e}, gradient {:.0e})\n",
        conformance::ACTIVATION_TOL, conformance::GRADIENT_TOL);
    println!("| NEURAL_STYLE_CONV | case | worst activation | gradient | passes |");
    println!("|---|---|---|---|---|");
    for s in &settings {
        set_conv(s);
        for case in parity::real_cases(vgg.clone()) {
            let c = conformance::compare(CandleBackend::cpu(), &case)?;
            let worst = c.activation_rel.iter().map(|p| p.1).fold(0.0, f64::max);
            println!(
                "| {s} | {} | {worst:.2e} | {:.2e} | {} |",
                case.name,
                c.gradient_rel,
                if c.check().is_ok() { "yes" } else { "no" }
            );
        }
    }
    Ok(())
}
