//! neural-style-core: everything about Gatys-style neural style transfer that
//! does not depend on a compute engine.
//!
//! * [`layers`] — the VGG19 layer table and its names (`relu4_2`, `pool4`,
//!   Keras aliases `block4_conv2`).
//! * [`weights`] — the VGG19 weights in memory (`neural-style-weights` reads
//!   and writes them as files).
//! * [`pixel`], [`image_io`] — the Caffe pixel space and image files.
//! * [`backend`] — the traits a compute backend implements.
//! * [`vgg`], [`objective`] — the network and the canonical objective with
//!   its hand-written gradient, written once over the backend traits.
//! * [`optim`] — L-BFGS and Adam over the backend's vector operations.
//! * [`run`] — the optimisation loop: progress, saving, best image; several
//!   scales in a row (multi-resolution); [`stopping`] — when the picture is
//!   done (the rule that ends a run before its cap).
//! * [`color`] — `--original-colors` and `--color-match`; [`mask`] — spatial
//!   style masks.
//! * [`temporal`] — video's temporal consistency term (Ruder et al.), one
//!   more part of the objective.
//!
//! With the `testing` feature (for the backends' and the front-end's tests
//! only), the test kit under `testing`: `reference` (an independent f64
//! implementation of the objective and its gradient), `conformance` (every
//! backend against it) and `parity` (backend against backend).

#![warn(missing_docs)]

pub mod backend;
pub mod color;
pub mod error;
pub mod image_io;
pub mod layers;
pub mod mask;
pub mod memory;
pub mod objective;
pub mod optim;
pub mod pixel;
pub mod rng;
pub mod run;
pub mod stopping;
pub mod temporal;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod vgg;
pub mod weights;

pub use error::{Error, Result};
