//! Video for neural-style (docs/DESIGN.md, "Video"): clips decoded and
//! encoded by the `ffmpeg` program ([`ffmpeg`]), dense optical flow
//! ([`flow`]: OpenCV's DIS, feature `opencv`), warping, certainty and the
//! warping error ([`warp`]). The temporal term these feed is core's
//! (`neural_style_core::temporal`).
#![warn(missing_docs)]

pub mod ffmpeg;
pub mod flow;
pub mod warp;
