//! The video crate's tests: clips made by ffmpeg from a bundled sample photo
//! (no downloads) with known motion — a pan, a zoom, a pan with an object
//! crossing it — and bad clips. Without ffmpeg (or, for the flow, without
//! the `opencv` feature) each test says it skipped and why.

mod clips;
mod support;
