//! The custom operations (`neural_style_candle::ops`) on plain candle
//! tensors, against candle's own operations where candle has them — and
//! the one where candle is wrong.

use candle_core::{DType, Device, Tensor, Var};
use neural_style_candle::ops::{self, CandleConv, Pool, PoolBackward, Pooling};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = neural_style_core::rng::Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// docs/DESIGN.md: candle's max-pool backward hands the maximum of a 2×2
/// window a quarter of the gradient; the right answer (and ours) is all of
/// it. Should candle fix it, this test fails, and the backend can switch.
#[test]
fn max_pool_backward_of_candle_is_wrong() {
    let x = Var::from_vec(vec![1f32, 2.0, 3.0, 4.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    let grads = x
        .max_pool2d(2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let candle = values(grads.get(&x).unwrap());
    let right = vec![0.0, 0.0, 0.0, 1.0];
    assert_eq!(
        candle,
        vec![0.0, 0.0, 0.0, 0.25],
        "candle's max-pool backward changed"
    );
    assert_ne!(candle, right);

    let x = x.as_tensor().squeeze(0).unwrap();
    let dy = Tensor::ones((1, 1, 1), DType::F32, &Device::Cpu).unwrap();
    let ours = x
        .apply_op2_no_bwd(&dy, &PoolBackward(Pooling::Max))
        .unwrap();
    assert_eq!(values(&ours), right);
}

#[test]
fn pooling_gives_candles_bytes_and_its_average_gradient() {
    for (c, h, w) in [(3, 8, 6), (2, 7, 5), (1, 2, 2)] {
        let x = randn(&[c, h, w], 3);
        let x4 = x.unsqueeze(0).unwrap();
        for (kind, theirs) in [
            (Pooling::Max, x4.max_pool2d(2).unwrap()),
            (Pooling::Avg, x4.avg_pool2d(2).unwrap()),
        ] {
            let ours = x.apply_op1_no_bwd(&Pool(kind)).unwrap();
            assert_eq!(values(&ours), values(&theirs), "{kind:?} {c}×{h}×{w}");
        }
        // Average pooling's gradient, against candle's autograd, on even
        // sizes (on odd ones the two differ: see below).
        if h % 2 == 1 || w % 2 == 1 {
            continue;
        }
        let v = Var::from_tensor(&x4).unwrap();
        let dy = randn(&[c, h / 2, w / 2], 4);
        let loss = (v.avg_pool2d(2).unwrap() * dy.unsqueeze(0).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let theirs = loss
            .backward()
            .unwrap()
            .get(&v)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let ours = x
            .apply_op2_no_bwd(&dy, &PoolBackward(Pooling::Avg))
            .unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-6);
    }
}

#[test]
fn convolutions_match_candles_conv2d_and_conv_transpose2d() {
    // 3 → 8 (im2col both ways), 16 → 24 (Winograd both ways).
    for (c_in, c_out, h, w) in [(3, 8, 9, 7), (16, 24, 10, 13)] {
        let x = randn(&[c_in, h, w], 1);
        let k = (randn(&[c_out, c_in, 3, 3], 2) * 0.2).unwrap();
        let b = randn(&[c_out], 5);
        let want = x
            .unsqueeze(0)
            .unwrap()
            .conv2d(&k, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, c_out, 1, 1)).unwrap())
            .unwrap()
            .squeeze(0)
            .unwrap();
        let conv = CandleConv::new(&k, Some(&b)).unwrap();
        assert!(max_diff(&conv.forward(&x).unwrap(), &want) < 1e-4);
        assert!(max_diff(&ops::conv3x3(&x, &k, Some(&b)).unwrap(), &want) < 1e-4);
        let relu = ops::conv3x3_relu(&x, &k, Some(&b)).unwrap();
        assert!(max_diff(&relu, &want.relu().unwrap()) < 1e-4);

        let dy = randn(&[c_out, h, w], 6);
        let want = dy
            .unsqueeze(0)
            .unwrap()
            .conv_transpose2d(&k, 1, 0, 1, 1)
            .unwrap()
            .squeeze(0)
            .unwrap();
        assert!(max_diff(&conv.input_grad(&dy).unwrap(), &want) < 1e-4);
    }
}

#[test]
fn gram_and_its_backward_match_candles_matmul() {
    let (c, h, w) = (20, 6, 7);
    let f = randn(&[c, h, w], 7);
    let n = (c * h * w) as f64;
    let fm = f.reshape((c, h * w)).unwrap();
    let want = (fm.matmul(&fm.t().unwrap()).unwrap() / n).unwrap();
    let g = f.apply_op1_no_bwd(&ops::Gram).unwrap();
    assert_eq!(g.dims(), &[1, c, c]);
    assert!(max_diff(&g.squeeze(0).unwrap(), &want) < 1e-5);

    let dg = randn(&[1, c, c], 8).squeeze(0).unwrap();
    let sym = (&dg + dg.t().unwrap()).unwrap();
    let want = ((sym.matmul(&fm).unwrap()) / n)
        .unwrap()
        .reshape((c, h, w))
        .unwrap();
    let got = f.apply_op2_no_bwd(&dg, &ops::GramBackward).unwrap();
    assert!(max_diff(&got, &want) < 1e-5);
}

#[test]
fn elementwise_ops_and_reductions_match_candle() {
    let y = randn(&[4, 5, 6], 9).relu().unwrap();
    let dy = randn(&[4, 5, 6], 10);
    let want = y
        .gt(0f32)
        .unwrap()
        .where_cond(&dy, &dy.zeros_like().unwrap())
        .unwrap();
    let got = y.apply_op2_no_bwd(&dy, &ops::ReluBackward).unwrap();
    assert_eq!(values(&got), values(&want));

    let want = (&y + (&dy * 0.5).unwrap()).unwrap();
    assert_eq!(values(&ops::axpy(0.5, &dy, &y).unwrap()), values(&want));

    let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let dot = (f64s(&y) * f64s(&dy)).unwrap().sum_all().unwrap();
    let dot = dot.to_scalar::<f64>().unwrap();
    assert!((ops::dot(&y, &dy).unwrap() - dot).abs() < 1e-9 * (1.0 + dot.abs()));
    let l1 = f64s(&dy).abs().unwrap().sum_all().unwrap();
    let l1 = l1.to_scalar::<f64>().unwrap();
    assert!((ops::norm1(&dy).unwrap() - l1).abs() < 1e-9 * l1);

    let (mse, grad) = ops::mse_grad(&y, &dy, 3.0).unwrap();
    let d = (&y - &dy).unwrap();
    let want = f64s(&d).sqr().unwrap().mean_all().unwrap();
    assert!((mse - want.to_scalar::<f64>().unwrap()).abs() < 1e-9);
    let want = (d * (6.0 / 120.0)).unwrap();
    assert!(max_diff(&grad, &want) < 1e-6);

    let (tv, grad) = ops::tv_grad(&dy, 1.0).unwrap();
    let dv = dy.narrow(1, 1, 4).unwrap() - dy.narrow(1, 0, 4).unwrap();
    let dh = dy.narrow(2, 1, 5).unwrap() - dy.narrow(2, 0, 5).unwrap();
    let sq = |t: candle_core::Result<Tensor>| {
        let t = f64s(&t.unwrap());
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let want = (sq(dv) + sq(dh)) / 120.0;
    assert!((tv - want).abs() < 1e-9 * want);
    assert_eq!(grad.dims(), dy.dims());
}

#[test]
fn bad_inputs_are_errors_that_name_the_op() {
    let x4 = randn(&[1, 3, 4, 4], 1);
    let e = x4.apply_op1_no_bwd(&ops::Gram).unwrap_err().to_string();
    assert!(e.contains("gram") && e.contains("C×H×W"), "{e}");
    let x = randn(&[3, 4, 4], 1);
    let conv = CandleConv::new(&randn(&[8, 5, 3, 3], 2), None).unwrap();
    let e = conv.forward(&x).unwrap_err().to_string();
    assert!(
        e.contains("conv3x3") && e.contains("5 channels, got 3"),
        "{e}"
    );
    let e = CandleConv::new(&randn(&[8, 3, 5, 5], 2), None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("3×3"), "{e}");
    let e = x
        .to_dtype(DType::F64)
        .unwrap()
        .apply_op1_no_bwd(&Pool(Pooling::Max))
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32"), "{e}");
    let e = ops::dot(&x, &randn(&[3, 4, 5], 1)).unwrap_err().to_string();
    assert!(e.contains("dot"), "{e}");
    let e = x
        .apply_op2_no_bwd(&randn(&[3, 3, 2], 1), &PoolBackward(Pooling::Avg))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool2x2-backward"), "{e}");
}

#[test]
fn average_pool_backward_leaves_the_dropped_row_and_column_at_zero() {
    // 2×5×3: pooling reads rows 0..4 and columns 0..2; the rest get nothing.
    let x = randn(&[2, 5, 3], 11);
    let dy = randn(&[2, 2, 1], 12);
    let dx = x
        .apply_op2_no_bwd(&dy, &PoolBackward(Pooling::Avg))
        .unwrap();
    let dx = dx.to_vec3::<f32>().unwrap();
    let dy = dy.to_vec3::<f32>().unwrap();
    for c in 0..2 {
        for (r, row) in dx[c].iter().enumerate() {
            for (k, v) in row.iter().enumerate() {
                let want = if r < 4 && k < 2 {
                    0.25 * dy[c][r / 2][k / 2]
                } else {
                    0.0
                };
                assert_eq!(*v, want, "{c},{r},{k}");
            }
        }
    }
}

/// A failing candle operation reaches the caller as the backend's error with
/// candle's own error kept as its `source()`, not flattened to a string.
#[test]
fn a_candle_error_is_kept_as_the_backend_errors_source() {
    use neural_style_candle::CandleBackend;
    use neural_style_core::backend::{Backend, VecOps};
    use std::error::Error as _;
    let b = CandleBackend::cpu();
    let x = b.upload(&[1.0; 12], [3, 2, 2]).unwrap();
    let y = b.upload(&[1.0; 8], [2, 2, 2]).unwrap();
    let e = b
        .dot(&x, &y)
        .expect_err("12 and 8 elements have no dot product");
    assert!(e.to_string().starts_with("backend candle: "), "{e}");
    let source = e.source().expect("the engine's error is kept");
    assert!(
        source.downcast_ref::<candle_core::Error>().is_some(),
        "source is not candle's error: {source:?}"
    );
}

/// The in-place ops the backward pass uses on its own gradients give the
/// values of the out-of-place ones: the ReLU mask exactly, the style
/// gradient accumulated by the GEMM as the product then `axpy` add it (to
/// rounding: the GEMM may add in another order for wide layers), and they
/// write into the tensor they are given, not a copy.
#[test]
fn in_place_relu_mask_and_gram_accumulation_match_the_out_of_place_ops() {
    use neural_style_candle::CandleBackend;
    use neural_style_core::backend::{Backend, VecOps};
    let b = CandleBackend::cpu();
    let y = randn(&[5, 7, 9], 1).relu().unwrap();
    let dy = randn(&[5, 7, 9], 2);
    let want = b.relu_backward(&y, &dy).unwrap();
    // A copy of dy's values in storage of its own (no one else holds it).
    let mine = Tensor::from_vec(values(&dy), (5, 7, 9), &Device::Cpu).unwrap();
    // A second handle, only to see where the result was written.
    let seen = mine.clone();
    let got = b.relu_backward_owned(&y, mine).unwrap();
    assert_eq!(values(&got), values(&want));
    assert_eq!(values(&seen), values(&want), "written in place");
    assert_ne!(values(&got), values(&dy), "the mask zeroed something");

    for (c, seed) in [(4usize, 3u64), (64, 5), (300, 7)] {
        let f = randn(&[c, 6, 11], seed).relu().unwrap();
        let dg = randn(&[1, c, c], seed + 1);
        let acc = randn(&[c, 6, 11], seed + 2);
        let mut want = acc.clone();
        b.axpy(1.0, &b.gram_backward(&f, &dg).unwrap(), &mut want)
            .unwrap();
        let mine = Tensor::from_vec(values(&acc), (c, 6, 11), &Device::Cpu).unwrap();
        let got = b.gram_backward_add(&f, &dg, mine).unwrap();
        let scale = values(&want).iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            max_diff(&got, &want) <= 1e-6 * scale,
            "{c} channels: {} (scale {scale})",
            max_diff(&got, &want)
        );
        if c <= 64 {
            assert_eq!(values(&got), values(&want), "{c} channels: same bytes");
        }
    }
}
