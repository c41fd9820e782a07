//! The backend parity suite (`neural_style_core::parity`), run for every
//! pair of compiled backends; candle is the reference backend.
//!
//! Each pair gets the same three tests from one macro: the seeded tiny
//! cases, one case on the real VGG19 weights, and a deliberately perturbed
//! weight that the suite must catch.

#[allow(unused_macros)]
macro_rules! parity_tests {
    ($pair:ident, $backend:expr, $reference:expr) => {
        mod $pair {
            use neural_style::core::parity;
            use neural_style::core::weights::{self, Vgg19Weights};

            #[test]
            fn agrees_on_the_tiny_cases() {
                parity::assert_parity($backend, $reference, None);
            }

            #[test]
            fn agrees_on_the_real_weights() {
                // `cargo xtask test` fetches them first; a plain `cargo test`
                // on a machine without them fetches them the way a user would.
                let path = weights::ensure(None, &mut |m| eprintln!("{m}"))
                    .expect("VGG19 weights (run `cargo xtask weights`)");
                let w = Vgg19Weights::load(&path).expect("weights load");
                parity::assert_parity($backend, $reference, Some(parity::real_case(w)));
            }

            #[test]
            fn a_perturbed_weight_is_caught() {
                let case = parity::cases().remove(0);
                let mut perturbed = case.weights.clone();
                perturbed.convs[3].weight[5] += 0.01;
                let p = parity::compare_with_weights($backend, &perturbed, $reference, &case)
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
    neural_style_tch::TchBackend::cpu(),
    neural_style_candle::CandleBackend::cpu()
);
