//! Dense optical flow between two frames: OpenCV's DIS (Kroeger et al. 2016)
//! through the `opencv` crate (feature `opencv`; Debian's libopencv-dev).

use neural_style_core::image_io::Picture;
#[cfg(feature = "opencv")]
use neural_style_core::Error;
use neural_style_core::Result;

/// A dense flow field from frame A to frame B: pixel `(x, y)` of A is at
/// `(x + u, y + v)` in B. Row-major `[u, v]` per pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `[u, v]` per pixel, row-major.
    pub uv: Vec<[f32; 2]>,
}

impl Flow {
    /// A flow of one constant displacement.
    pub fn constant(width: usize, height: usize, u: f32, v: f32) -> Flow {
        Flow {
            width,
            height,
            uv: vec![[u, v]; width * height],
        }
    }

    /// The displacement at pixel `(x, y)`.
    pub fn at(&self, x: usize, y: usize) -> [f32; 2] {
        self.uv[y * self.width + x]
    }

    /// The displacement at a real position, bilinear, clamped to the border.
    pub fn sample(&self, x: f32, y: f32) -> [f32; 2] {
        let mut out = [0.0; 2];
        for (i, wt) in crate::warp::taps(self.width, self.height, x, y) {
            out[0] += wt * self.uv[i][0];
            out[1] += wt * self.uv[i][1];
        }
        out
    }
}

/// 8-bit luminance (BT.601) of a picture, row-major: what DIS takes.
pub fn gray(p: &Picture) -> Vec<u8> {
    p.rgb
        .chunks_exact(3)
        .map(|c| {
            (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// Whether this build computes optical flow (the `opencv` feature).
pub const AVAILABLE: bool = cfg!(feature = "opencv");

/// The flow from `a` to `b` (same size), OpenCV DIS at its `MEDIUM`
/// preset. Without the `opencv` feature, an error that says how to build it.
pub fn dis(a: &Picture, b: &Picture) -> Result<Flow> {
    dis_impl(a, b)
}

#[cfg(feature = "opencv")]
fn dis_impl(a: &Picture, b: &Picture) -> Result<Flow> {
    use opencv::core::{Mat, Vec2f};
    use opencv::prelude::*;
    use opencv::video::{DISOpticalFlow, DISOpticalFlow_PRESET_MEDIUM};
    let cv = |e: opencv::Error| Error::config("flow", format!("OpenCV DIS optical flow: {e}"));
    if (a.width, a.height) != (b.width, b.height) {
        return Err(Error::config(
            "flow",
            format!(
                "frames of different sizes: {}×{} and {}×{}",
                a.width, a.height, b.width, b.height
            ),
        ));
    }
    let (w, h) = (a.width as i32, a.height as i32);
    let (ga, gb) = (gray(a), gray(b));
    let ma = Mat::new_rows_cols_with_data(h, w, &ga).map_err(cv)?;
    let mb = Mat::new_rows_cols_with_data(h, w, &gb).map_err(cv)?;
    let mut dis = DISOpticalFlow::create(DISOpticalFlow_PRESET_MEDIUM).map_err(cv)?;
    let mut flow = Mat::default();
    dis.calc(&ma, &mb, &mut flow).map_err(cv)?;
    let data = flow.data_typed::<Vec2f>().map_err(cv)?;
    if data.len() != (w * h) as usize {
        return Err(Error::config(
            "flow",
            format!("OpenCV DIS returned {} vectors for {w}×{h}", data.len()),
        ));
    }
    Ok(Flow {
        width: w as usize,
        height: h as usize,
        uv: data.iter().map(|v| [v[0], v[1]]).collect(),
    })
}

#[cfg(not(feature = "opencv"))]
fn dis_impl(_: &Picture, _: &Picture) -> Result<Flow> {
    require()?;
    unreachable!("require() refuses a build without optical flow")
}

/// Ok when this build computes optical flow; otherwise the error that says
/// how to get one.
pub fn require() -> Result<()> {
    if AVAILABLE {
        Ok(())
    } else {
        Err(neural_style_core::Error::config(
            "flow",
            "this build has no optical flow: install libopencv-dev, clang and libclang-dev, \
             and rebuild with `--features video`",
        ))
    }
}
