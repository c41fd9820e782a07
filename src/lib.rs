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
//! command line's image, byte for byte: both go through [`prepare`].
//!
//! The rest of the crate is the command line's machinery: which backends
//! this build has ([`backends`]), the options model ([`options`]) and its
//! resolution into [`settings::Settings`], the preflight checks
//! ([`preflight`]), the jobs ([`job`]), batches, checkpoints and claims.

#![warn(missing_docs)]

pub mod backends;
pub mod batch;
pub mod checkpoint;
pub mod claim;
pub mod events;
pub mod job;
pub mod options;
pub mod painter;
pub mod pictures;
pub mod preflight;
pub mod prepare;
pub mod serve;
pub mod settings;
pub mod shard;
pub mod signals;

pub use neural_style_core as core;
pub use neural_style_core::objective::LossParts;
pub use neural_style_core::{Error, Result};
pub use neural_style_weights::Vgg19Weights;
pub use options::{Options, Preset};
pub use painter::{load_weights, ImageSource, Painter, Painting, Progress};

/// Keep large freed buffers in the process heap for reuse instead of
/// returning each one to the OS (glibc otherwise `mmap`s and `munmap`s every
/// activation-sized allocation, paying page faults and zeroing on every
/// layer of every iteration: ~5–9 % of an iteration at 256×192, measured with
/// `cargo bench --bench iteration`). Peak memory is unchanged: the heap only
/// keeps what the previous iteration already used. Call once at start-up.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator thresholds; called before any
    // threads are started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
