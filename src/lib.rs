//! neural-style: Gatys-style neural style transfer with interchangeable
//! compute backends.
//!
//! This crate is the front-end: the `neural-style` binary and a small facade
//! over [`neural_style_core`] that knows which backends this build has
//! ([`backends`]), how options are layered ([`settings`]) and how a job runs
//! ([`job`]).

pub mod backends;
pub mod job;
pub mod settings;

pub use neural_style_core as core;
