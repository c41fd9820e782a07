//! One run's pipeline, the same for the library's [`crate::Painter`] and
//! every command of the `neural-style` binary: [`prepare()`] (the backend
//! checked, the [`preflight`] of every path and size, threads, the inputs
//! decoded and sized, the starting image, the weights), then a [`Session`]
//! on the selected backend.
//!
//! Options flow one way: flag → [`crate::options`] → the resolved
//! [`Settings`](crate::options::Settings) → here → core.

pub mod preflight;
mod prepare;
mod session;
pub mod written;

pub use prepare::{prepare, prepare_written, set_threads, Images, Prepared};
pub use session::{
    evaluate_loss, finish, initial_image, initial_image_with, load_at_size, load_sources,
    load_sources_with, load_styles, load_weights, Inputs, LossReport, Session, Sources,
};
