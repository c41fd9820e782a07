//! Spatial style masks (`--style-mask`): where a style image applies.
//!
//! A mask is one value in 0–1 per pixel of the content image (white = 1 =
//! this style applies). The objective takes it to each style layer's
//! resolution once, when the objective is built: 2×2 averages, odd trailing
//! rows and columns dropped, once per pooling layer above the layer — the
//! same geometry as the network's pooling, so mask pixel `(y, x)` at a layer
//! covers the same block of the image as feature pixel `(y, x)`.

use crate::image_io::Picture;
use crate::layers::LayerId;

/// A style's region of the content image: one weight in 0–1 per content pixel
/// (white: the style applies fully; black: not at all).
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    /// Width in pixels (the content's at the scale in use).
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major, one value in 0–1 per pixel.
    pub data: Vec<f32>,
}

impl Mask {
    /// From an image: its luminance (BT.601), 0–255 mapped to 0–1.
    pub fn from_picture(p: &Picture) -> Mask {
        let data = p
            .rgb
            .chunks_exact(3)
            .map(|c| ((0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) / 255.0).clamp(0.0, 1.0))
            .collect();
        Mask {
            width: p.width as usize,
            height: p.height as usize,
            data,
        }
    }

    /// `Σ m`.
    pub fn area(&self) -> f64 {
        self.data.iter().map(|v| *v as f64).sum()
    }

    /// True when no pixel is lit (every value below half an 8-bit step).
    pub fn is_black(&self) -> bool {
        self.data.iter().all(|v| *v < 0.5 / 255.0)
    }

    /// 2×2 box average; an odd trailing row or column is dropped (as pooling).
    pub fn halve(&self) -> Mask {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let at = |yy: usize, xx: usize| self.data[yy * self.width + xx];
                data.push(
                    (at(2 * y, 2 * x)
                        + at(2 * y, 2 * x + 1)
                        + at(2 * y + 1, 2 * x)
                        + at(2 * y + 1, 2 * x + 1))
                        / 4.0,
                );
            }
        }
        Mask {
            width: w,
            height: h,
            data,
        }
    }

    /// The mask at the resolution of `layer`'s output.
    pub fn at_layer(&self, layer: LayerId) -> Mask {
        (0..layer.pools_up_to()).fold(self.clone(), |m, _| m.halve())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_follows_pooling_geometry() {
        let m = Mask {
            width: 5,
            height: 3,
            data: (0..15).map(|v| v as f32 / 14.0).collect(),
        };
        let h = m.halve();
        assert_eq!((h.width, h.height), (2, 1));
        assert!((h.data[0] - (0.0 + 1.0 + 5.0 + 6.0) / 4.0 / 14.0).abs() < 1e-6);
        let l = LayerId::parse("relu3_1").unwrap(); // behind two pools
        let at = m.at_layer(l);
        assert_eq!((at.width, at.height), (1, 0));
        let black = Mask {
            width: 2,
            height: 1,
            data: vec![0.0, 0.001],
        };
        assert!(black.is_black());
    }
}
