//! neural-style: Gatys-style neural style transfer with interchangeable
//! compute backends — the `neural-style` command line, and this library.
//!
//! Paint an image from your own program with a [`Painter`]: images in (files
//! or [`image::RgbImage`]s), [`Options`] (every option of the command line,
//! same names and defaults), a backend by name, a callback per iteration
//! that sees the losses, can preview the image and can stop the run, and an
//! image out:
//!
//! ```
//! use image::{Rgb, RgbImage};
//! use neural_style::{Options, Painter};
//! use std::ops::ControlFlow;
//!
//! # fn main() -> neural_style::Result<()> {
//! let photo = RgbImage::from_fn(48, 32, |x, y| Rgb([(x * 5) as u8, (y * 7) as u8, 90]));
//! let painting = RgbImage::from_fn(32, 32, |x, y| Rgb([((x ^ y) * 8) as u8, 40, 200]));
//! let result = Painter::with_default_backend() // or Painter::new("tch")?
//!     .content(photo)? // or a path: .content("photo.jpg")?
//!     .style(painting)?
//!     .options(Options { size: 32, iterations: 3, ..Options::default() })
//!     .on_iteration(|p| {
//!         println!("{}/{}: loss {:.3e}", p.iteration, p.of, p.loss.total);
//!         ControlFlow::Continue(()) // Break(()) stops with the best image so far
//!     })
//!     .paint()?;
//! assert_eq!(result.image.dimensions(), (32, 21));
//! // result.save("out.png".as_ref())?; // or keep result.image in memory
//! # Ok(()) }
//! ```
//!
//! The weights are found (or fetched once through pip) as the command line
//! finds them; a server loads them once with [`load_weights`] and hands them
//! to each [`Painter::weights`]. The same options and input files give the
//! command line's image, byte for byte: both go through one pipeline.
//!
//! The API is this page: [`Painter`] and what it takes and gives, the
//! [`Options`] (every option declared once, with its enums and [`Preset`]s),
//! the weights ([`load_weights`], [`Vgg19Weights`]), [`backends`] (which
//! backends this build has, and running code generic over
//! [`core::backend::Backend`] on one of them) and the [`Error`] type.
//! [`core`] is the algorithm itself, its own API boundary.
//!
//! The `neural-style` binary (the `crates/cli` package) is a client of this
//! library. It turns on the `cli` feature, which makes two more modules
//! public, for it alone and outside any API promise: `options` (the layers
//! the command line and files give: preset < file < flags, with their clap
//! parsers; the resolved job, `Settings`) and `run` (one run's pipeline:
//! prepare, preflight, session). An option flows one way: flag → `options`
//! → `run` → core.

#![warn(missing_docs)]

pub mod backends;
// The command line's machinery (feature `cli`, see the crate docs): public for
// crates/cli, private otherwise, where only what the API re-exports below and
// what the Painter uses is reachable.
#[cfg(feature = "cli")]
pub mod options;
#[cfg(not(feature = "cli"))]
#[allow(dead_code, unused_imports)]
mod options;
mod painter;
#[cfg(feature = "cli")]
pub mod run;
#[cfg(not(feature = "cli"))]
#[allow(dead_code, unused_imports)]
mod run;

pub use neural_style_core as core;
pub use neural_style_core::objective::LossParts;
pub use neural_style_core::{Error, Result};
pub use neural_style_weights::Vgg19Weights;
pub use options::{
    FirstStepName, InitName, LineSearchName, NormalizationName, OptimizerName, Options,
    PoolingName, Preset,
};
pub use painter::{load_weights, ImageSource, Painter, Painting, Progress};

/// Keep large freed buffers in the process heap for reuse instead of
/// returning each one to the OS (glibc otherwise `mmap`s and `munmap`s every
/// activation-sized allocation, paying page faults and zeroing on every
/// layer of every iteration: ~5–9 % of an iteration at 256×192, measured with
/// `cargo bench --bench iteration`). Peak memory is unchanged: the heap only
/// keeps what the previous iteration already used. Best called once at
/// start-up (it then applies to every allocation); calling it at any time,
/// from any thread, is sound.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's mallopt takes the allocator's own lock (it is MT-Safe
    // in glibc's manual) and only sets two thresholds: it has no
    // precondition on the caller, threads or no threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
