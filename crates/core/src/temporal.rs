//! The temporal consistency term of video style transfer (Ruder, Dosovitskiy
//! & Brox, "Artistic style transfer for videos", GCPR 2016; docs/DESIGN.md,
//! "Video"): frame `t` is held close to the previous stylised frames warped
//! into it, wherever the optical flow is trusted.
//!
//! ```text
//! temporal(x) = Σ_{j∈J} Σ_{c,y,x} c_j[y,x] · (x[c,y,x] − ω_j(x_{t−j})[c,y,x])² / (C·H·W)
//! total(x)   += temporal_weight · temporal(x)
//! ```
//!
//! with `ω_j(x_{t−j})` the stylised frame `t − j` warped into frame `t` and
//! `c_j ∈ [0, 1]` its certainty per pixel (0 where the pixel is disoccluded
//! or on a motion boundary). For the long-term loss the certainties are
//! taken "closest first" ([`closest_first`]), so each pixel is held to its
//! nearest reliable earlier frame only. The term is jcjohnson-style (a mean
//! over the `C·H·W` values) under either normalisation of the other parts.
//!
//! [`crate::objective::Objective::with_temporal`] adds it to the objective,
//! computed with the backend's primitives only: with `r = √c`,
//! `Σ c (x − w)² / D = mean((r ⊙ x − r ⊙ w)²)` (`Backend::mul_mask`, then
//! `Backend::mse_grad`), and the gradient is `r ⊙ ∂mean/∂(r ⊙ x)`.

use crate::error::{Error, Result};
use crate::mask::Mask;
use crate::pixel::CaffeImage;

/// One earlier frame's constraint on the frame being optimised.
#[derive(Clone, Debug, PartialEq)]
pub struct TemporalFrame {
    /// The earlier *stylised* frame warped into this frame (Caffe space, the
    /// size of the content).
    pub warped: CaffeImage,
    /// Its certainty per pixel, 0–1 (the content's size).
    pub certainty: Mask,
}

/// The temporal term: its weight and one constraint per earlier frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Temporal {
    /// The weight of the term in the total (Ruder et al.: 1e3 with the
    /// jcjohnson normalisation).
    pub weight: f64,
    /// The earlier frames, closest first (their certainties already
    /// combined with [`closest_first`] for the long-term loss).
    pub frames: Vec<TemporalFrame>,
}

impl Temporal {
    /// Check the term against a content of `width×height`: every frame and
    /// certainty of that size, certainties within 0–1, a finite non-negative weight.
    pub fn check(&self, width: usize, height: usize) -> Result<()> {
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(Error::config(
                "temporal-weight",
                format!("must be a finite number ≥ 0, not {}", self.weight),
            ));
        }
        for (i, f) in self.frames.iter().enumerate() {
            let sizes = [
                (f.warped.width, f.warped.height),
                (f.certainty.width, f.certainty.height),
            ];
            if sizes.iter().any(|s| *s != (width, height))
                || f.warped.data.len() != 3 * width * height
                || f.certainty.data.len() != width * height
            {
                return Err(Error::config(
                    "temporal",
                    format!(
                        "earlier frame {} is {}×{} (certainty {}×{}) but the content is {width}×{height}",
                        i + 1,
                        f.warped.width,
                        f.warped.height,
                        f.certainty.width,
                        f.certainty.height
                    ),
                ));
            }
            if f.certainty.data.iter().any(|v| !(0.0..=1.0).contains(v)) {
                return Err(Error::config(
                    "temporal",
                    format!("earlier frame {}: a certainty outside 0–1", i + 1),
                ));
            }
        }
        Ok(())
    }
}

/// The long-term loss's certainties, "closest first" (Ruder et al.): with
/// `certainties[i]` the certainty of the `i`-th closest earlier frame,
/// `c_long_i = max(0, c_i − Σ_{k<i} c_k)`, so a pixel is held to the
/// nearest earlier frame that saw it and to no farther one. All masks have
/// one size (the caller's frames).
pub fn closest_first(certainties: &[Mask]) -> Vec<Mask> {
    let Some(first) = certainties.first() else {
        return Vec::new();
    };
    let mut sum = vec![0.0f32; first.data.len()];
    certainties
        .iter()
        .map(|c| {
            let data = c
                .data
                .iter()
                .zip(sum.iter_mut())
                .map(|(v, s)| {
                    let out = (v - *s).max(0.0);
                    *s += v;
                    out
                })
                .collect();
            Mask {
                width: c.width,
                height: c.height,
                data,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(data: &[f32]) -> Mask {
        Mask {
            width: data.len(),
            height: 1,
            data: data.to_vec(),
        }
    }

    #[test]
    fn closest_first_keeps_each_pixel_for_its_nearest_reliable_frame() {
        let c = closest_first(&[
            mask(&[1.0, 0.0, 0.0, 0.5]),
            mask(&[1.0, 1.0, 0.0, 1.0]),
            mask(&[1.0, 1.0, 1.0, 1.0]),
        ]);
        assert_eq!(c[0].data, [1.0, 0.0, 0.0, 0.5]);
        assert_eq!(c[1].data, [0.0, 1.0, 0.0, 0.5]);
        assert_eq!(c[2].data, [0.0, 0.0, 1.0, 0.0]);
        assert!(closest_first(&[]).is_empty());
    }

    #[test]
    fn check_names_a_frame_of_the_wrong_size() {
        let t = Temporal {
            weight: 1e3,
            frames: vec![TemporalFrame {
                warped: CaffeImage::noise(4, 3, 1),
                certainty: Mask {
                    width: 4,
                    height: 3,
                    data: vec![1.0; 12],
                },
            }],
        };
        assert!(t.check(4, 3).is_ok());
        let e = t.check(5, 3).unwrap_err().to_string();
        assert!(e.contains("earlier frame 1 is 4×3"), "{e}");
        let bad = Temporal { weight: -1.0, ..t };
        assert!(bad
            .check(4, 3)
            .unwrap_err()
            .to_string()
            .contains("temporal-weight"));
    }
}
