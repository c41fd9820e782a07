//! The test kit, compiled only with the `testing` feature (which only
//! [dev-dependencies] enable): what every backend is held to.
//!
//! * [`reference`] — an independent f64 implementation of the forward pass,
//!   the objective and its gradient.
//! * [`conformance`] — a backend against that reference, primitive by
//!   primitive and end to end.
//! * [`parity`] — a backend against another backend.
//! * [`skip`] — how a test that cannot run here says so (counted as skipped by
//!   `cargo xtask test`, never as passed).

pub mod conformance;
pub mod parity;
pub mod reference;
pub mod skip;
