//! Time each primitive of one evaluation at 256×192 on real-size layers
//! (random weights; shapes are what matter).
use neural_style_candle::CandleBackend;
use neural_style_core::backend::{Backend, Pooling, VecOps};
use neural_style_core::weights::Vgg19Weights;
use std::time::Instant;

fn main() {
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
    let (h, wd) = (192usize, 256usize);
    let mut totals = std::collections::BTreeMap::<&str, f64>::new();
    let mut x = b.upload(&vec![0.5; 3 * h * wd], [3, h, wd]).unwrap();
    let mut ch = 3;
    let mut hh = h;
    let mut ww = wd;
    let reps = 3;
    for (i, c) in w.convs.iter().enumerate().take(13) {
        let conv = b.prepare_conv(c).unwrap();
        let t = Instant::now();
        let mut y = None;
        for _ in 0..reps {
            y = Some(b.conv3x3_relu(&x, &conv).unwrap());
        }
        *totals.entry("conv fwd").or_default() += t.elapsed().as_secs_f64() / reps as f64;
        // candle's own conv2d on the same input, for comparison.
        let kt = candle_core::Tensor::from_vec(
            c.weight.clone(),
            (c.out_channels, c.in_channels, 3, 3),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let x4 = x.unsqueeze(0).unwrap();
        let t = Instant::now();
        for _ in 0..reps {
            x4.conv2d(&kt, 1, 1, 1, 1).unwrap();
        }
        *totals.entry("(candle conv2d fwd)").or_default() +=
            t.elapsed().as_secs_f64() / reps as f64;
        let y = y.unwrap();
        let t = Instant::now();
        for _ in 0..reps {
            b.conv3x3_backward(&y, &conv).unwrap();
        }
        *totals.entry("conv bwd").or_default() += t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            b.relu_backward(&y, &y).unwrap();
        }
        *totals.entry("relu bwd").or_default() += t.elapsed().as_secs_f64() / reps as f64;
        // candle's own (a mask, zeros, a select: three single-threaded passes).
        let t = Instant::now();
        for _ in 0..reps {
            y.gt(0f32)
                .and_then(|m| m.where_cond(&y, &y.zeros_like()?))
                .unwrap();
        }
        *totals.entry("(candle relu bwd)").or_default() += t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            b.axpy(0.5, &y, &mut y.clone()).unwrap();
        }
        *totals.entry("(axpy)").or_default() += t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            (&y + (&y * 0.5).unwrap()).unwrap();
        }
        *totals.entry("(candle axpy)").or_default() += t.elapsed().as_secs_f64() / reps as f64;
        ch = c.out_channels;
        x = y;
        if [1, 3, 7, 11].contains(&i) {
            let t = Instant::now();
            let mut p = None;
            for _ in 0..reps {
                p = Some(b.pool(&x, Pooling::Max).unwrap());
                b.pool_backward(&x, p.as_ref().unwrap(), Pooling::Max)
                    .unwrap();
            }
            *totals.entry("pool f+b").or_default() += t.elapsed().as_secs_f64() / reps as f64;
            let t = Instant::now();
            for _ in 0..reps {
                b.pool(&x, Pooling::Max).unwrap();
            }
            *totals.entry("(pool fwd)").or_default() += t.elapsed().as_secs_f64() / reps as f64;
            let t = Instant::now();
            for _ in 0..reps {
                x.unsqueeze(0).unwrap().max_pool2d(2).unwrap();
            }
            *totals.entry("(candle max_pool2d)").or_default() +=
                t.elapsed().as_secs_f64() / reps as f64;
            x = p.unwrap();
            hh /= 2;
            ww /= 2;
        }
        if [0, 2, 4, 8, 12].contains(&i) {
            let t = Instant::now();
            for _ in 0..reps {
                let g = b.gram(&x).unwrap();
                b.gram_backward(&x, &g).unwrap();
            }
            *totals.entry("gram f+b").or_default() += t.elapsed().as_secs_f64() / reps as f64;
        }
    }
    let _ = (ch, hh, ww);
    let sum: f64 = totals
        .iter()
        .filter(|(k, _)| !k.starts_with('('))
        .map(|(_, v)| v)
        .sum();
    for (k, v) in &totals {
        println!("{k:10} {:.3} s", v);
    }
    println!("total      {sum:.3} s");
}
