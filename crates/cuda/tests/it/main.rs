//! The cuda crate's integration tests, one binary: each module is what was
//! a test binary of its own. The executor is `NEURAL_STYLE_CUDA_DEVICE`'s
//! (`common`: `host` by default, `cuda:0` on a GPU machine).

mod batched;
#[allow(dead_code)]
mod common;
mod conformance;
mod memory;
mod nvrtc;
mod precision;
