//! The backend parity suite (`neural_style_core::testing::parity`), run for every
//! pair of compiled backends; candle is the reference backend.
//!
//! Each pair gets the same three tests from one macro: the seeded tiny
//! cases, a case per normalisation on the real VGG19 weights, and a deliberately perturbed
//! weight that the suite must catch. The backend expression yields `None`
//! (after printing that it skipped, and why) when its device is missing.

#[allow(unused_macros)]
macro_rules! parity_tests {
    ($pair:ident, $backend:expr, $reference:expr) => {
        mod $pair {
            use neural_style_core::testing::parity;
            use neural_style_weights::{self as weights, Vgg19Weights, WeightsFile};

            #[test]
            fn agrees_on_the_tiny_cases() {
                let Some(backend) = $backend else { return };
                parity::assert_parity(backend, $reference, Vec::new());
            }

            #[test]
            fn agrees_on_the_real_weights() {
                // `cargo xtask test` fetches them first; a plain `cargo test`
                // on a machine without them fetches them the way a user would.
                let path = weights::ensure(None, &mut |m| eprintln!("{m}"))
                    .expect("VGG19 weights (run `cargo xtask weights`)");
                let w = Vgg19Weights::load(&path).expect("weights load");
                let Some(backend) = $backend else { return };
                parity::assert_parity(backend, $reference, parity::real_cases(w));
            }

            #[test]
            fn a_perturbed_weight_is_caught() {
                let case = parity::cases().remove(0);
                let mut perturbed = case.weights.clone();
                perturbed.convs[3].weight[5] += 0.01;
                let Some(backend) = $backend else { return };
                let p = parity::compare_with_weights(backend, &perturbed, $reference, &case)
                    .expect("both backends run");
                let err = p.check().expect_err("a perturbed weight must fail parity");
                assert!(
                    err.contains("gradient") && err.contains("activation"),
                    "{err}"
                );
            }
        }
    };
}

#[cfg(all(feature = "candle", feature = "tch"))]
parity_tests!(
    tch_vs_candle,
    Some(neural_style_tch::TchBackend::cpu()),
    neural_style_candle::CandleBackend::cpu()
);

/// The cuda backend on `$NEURAL_STYLE_CUDA_DEVICE` (default `host`: our
/// kernels compiled for the CPU); `NEURAL_STYLE_REQUIRE_GPU=1` makes a
/// missing device a failure instead of a skip.
#[cfg(feature = "cuda")]
fn cuda() -> Option<neural_style_cuda::CudaBackend> {
    let dev = std::env::var("NEURAL_STYLE_CUDA_DEVICE").unwrap_or_else(|_| "host".into());
    match neural_style_cuda::CudaBackend::from_device(Some(&dev)) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("NEURAL_STYLE_REQUIRE_GPU").is_none() => {
            eprintln!("skipped: cuda backend on `{dev}` unavailable: {e}");
            None
        }
        Err(e) => panic!("cuda backend on `{dev}` required but unavailable: {e}"),
    }
}

#[cfg(all(feature = "candle", feature = "cuda"))]
parity_tests!(
    cuda_vs_candle,
    crate::cuda(),
    neural_style_candle::CandleBackend::cpu()
);

#[cfg(all(feature = "tch", feature = "cuda"))]
parity_tests!(
    cuda_vs_tch,
    crate::cuda(),
    neural_style_tch::TchBackend::cpu()
);
