//! Time each convolution of VGG19 (to conv5_1), forward and input gradient,
//! under each algorithm, at one input size: which one each layer should use.
//!
//!     cargo run --release -p neural-style-candle --example layers -- 128 96
use neural_style_candle::CandleBackend;
use neural_style_core::backend::Backend;
use neural_style_core::weights::Vgg19Weights;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("WIDTH HEIGHT"))
        .collect();
    let (wd, h) = (
        args.first().copied().unwrap_or(128),
        args.get(1).copied().unwrap_or(96),
    );
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let b = CandleBackend::cpu();
    let w = Vgg19Weights::synthetic(1, [64, 128, 256, 512, 512]);
    let algos = ["im2col", "f2", "f4"];
    let mut totals = vec![0.0f64; algos.len()];
    let (mut hh, mut ww) = (h, wd);
    println!(
        "{:8} {:>9} {:>6} | {:>17} {:>17} {:>17}",
        "layer", "in", "map", algos[0], algos[1], algos[2]
    );
    for (i, c) in w.convs.iter().enumerate().take(13) {
        if [2, 4, 8, 12].contains(&i) {
            hh /= 2;
            ww /= 2;
        }
        let x = b
            .upload(&vec![0.5; c.in_channels * hh * ww], [c.in_channels, hh, ww])
            .unwrap();
        let mut row = String::new();
        for (a, algo) in algos.iter().enumerate() {
            std::env::set_var("NEURAL_STYLE_CONV", algo);
            let conv = b.prepare_conv(c).unwrap();
            let y = b.conv3x3_relu(&x, &conv).unwrap();
            b.conv3x3_backward(&y, &conv).unwrap();
            let reps = (20_000_000 / (c.in_channels * c.out_channels * hh * ww)).clamp(3, 200);
            // The best of three timings of `reps` calls (the machine is shared).
            let time = |f: &dyn Fn()| {
                (0..3)
                    .map(|_| {
                        let t = Instant::now();
                        for _ in 0..reps {
                            f();
                        }
                        t.elapsed().as_secs_f64() / reps as f64
                    })
                    .fold(f64::INFINITY, f64::min)
            };
            let f = time(&|| {
                b.conv3x3_relu(&x, &conv).unwrap();
            });
            let g = time(&|| {
                b.conv3x3_backward(&y, &conv).unwrap();
            });
            totals[a] += f + g;
            row += &format!(" {:>8.2} {:>8.2}", f * 1e3, g * 1e3);
        }
        println!(
            "conv{:<4} {:>4}→{:<4} {:>3}x{:<3}|{row}",
            i, c.in_channels, c.out_channels, ww, hh
        );
    }
    println!(
        "total (ms, fwd+bwd): {}",
        algos
            .iter()
            .zip(&totals)
            .map(|(a, t)| format!("{a} {:.1}", t * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
