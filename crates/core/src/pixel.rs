//! The pixel space the network sees (docs/DESIGN.md, "Pixel space and weights").
//!
//! Caffe convention: channel order BGR, range 0–255, minus the mean pixel,
//! no division by a standard deviation. The optimised image lives in this
//! space; it is turned back into RGB bytes only when written out.

/// Mean pixel of the Caffe VGG19 training set, in **B, G, R** order.
pub const CAFFE_MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];

/// An image in the network's input space: planar `C×H×W`, channels B, G, R,
/// 0–255 minus [`CAFFE_MEAN_BGR`].
#[derive(Clone, Debug, PartialEq)]
pub struct CaffeImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Planar B, G, R, each row-major.
    pub data: Vec<f32>,
}

impl CaffeImage {
    /// `[3, height, width]`, as [`crate::backend::Backend::upload`] takes it.
    pub fn shape(&self) -> [usize; 3] {
        [3, self.height, self.width]
    }

    /// From interleaved RGB floats in 0–255 (`H×W×3`).
    pub fn from_rgb(width: usize, height: usize, rgb: &[f32]) -> Self {
        assert_eq!(rgb.len(), width * height * 3, "rgb buffer size");
        let plane = width * height;
        let mut data = vec![0.0; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            // BGR planes: plane 0 is blue.
            data[i] = px[2] - CAFFE_MEAN_BGR[0];
            data[plane + i] = px[1] - CAFFE_MEAN_BGR[1];
            data[2 * plane + i] = px[0] - CAFFE_MEAN_BGR[2];
        }
        CaffeImage {
            width,
            height,
            data,
        }
    }

    /// Back to interleaved RGB floats in 0–255, *not* rounded or clamped.
    pub fn to_rgb(&self) -> Vec<f32> {
        let plane = self.width * self.height;
        let mut rgb = vec![0.0; 3 * plane];
        for i in 0..plane {
            rgb[3 * i] = self.data[2 * plane + i] + CAFFE_MEAN_BGR[2];
            rgb[3 * i + 1] = self.data[plane + i] + CAFFE_MEAN_BGR[1];
            rgb[3 * i + 2] = self.data[i] + CAFFE_MEAN_BGR[0];
        }
        rgb
    }

    /// Output convention: add the mean, BGR→RGB, round, clamp to 0–255.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.to_rgb()
            .into_iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// Uniform noise image (the `--init noise` start), seeded.
    pub fn noise(width: usize, height: usize, seed: u64) -> Self {
        let mut rng = crate::rng::Rng::new(seed);
        let rgb: Vec<f32> = (0..width * height * 3)
            .map(|_| (rng.uniform() * 255.0) as f32)
            .collect();
        CaffeImage::from_rgb(width, height, &rgb)
    }

    /// jcjohnson/neural-style's random start (`-init random`):
    /// `randn(3, H, W) · 0.001` in Caffe space, i.e. the mean colour with a
    /// trace of Gaussian noise, seeded.
    pub fn randn(width: usize, height: usize, seed: u64) -> Self {
        let mut rng = crate::rng::Rng::new(seed);
        CaffeImage {
            width,
            height,
            data: (0..width * height * 3)
                .map(|_| (rng.normal() * 0.001) as f32)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randn_is_jcjohnsons_small_gaussian_start() {
        let img = CaffeImage::randn(64, 48, 3);
        assert_eq!(img, CaffeImage::randn(64, 48, 3));
        let n = img.data.len() as f64;
        let mean = img.data.iter().map(|v| *v as f64).sum::<f64>() / n;
        let sd = (img
            .data
            .iter()
            .map(|v| (*v as f64 - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        assert!(mean.abs() < 5e-5 && (sd - 1e-3).abs() < 5e-5, "{mean} {sd}");
        // The mean colour once written out.
        assert!(img.to_rgb8().chunks(3).all(|p| p == [124, 117, 104]));
    }

    #[test]
    fn roundtrip_and_channel_order() {
        // One red pixel: R=255 lands in the last (R) plane.
        let img = CaffeImage::from_rgb(1, 1, &[255.0, 0.0, 0.0]);
        assert_eq!(img.data, vec![-103.939, -116.779, 255.0 - 123.68]);
        assert_eq!(img.to_rgb8(), vec![255, 0, 0]);
        let rgb: Vec<f32> = (0..12).map(|v| v as f32 * 20.0).collect();
        let back = CaffeImage::from_rgb(2, 2, &rgb).to_rgb();
        for (a, b) in rgb.iter().zip(&back) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn output_rounds_and_clamps() {
        let mut img = CaffeImage::from_rgb(1, 1, &[0.0, 0.0, 0.0]);
        img.data = vec![1000.0, -1000.0, 0.4 - 123.68 + 0.2];
        assert_eq!(img.to_rgb8(), vec![1, 0, 255]);
    }
}
