//! neural-style: Gatys-style neural style transfer with interchangeable
//! compute backends.
//!
//! This crate is the front-end: the `neural-style` binary and a small facade
//! over [`neural_style_core`] that knows which backends this build has
//! ([`backends`]), how options are layered ([`settings`]) and how a job runs
//! ([`job`]).

pub mod backends;
pub mod batch;
pub mod checkpoint;
pub mod claim;
pub mod events;
pub mod job;
pub mod pictures;
pub mod preflight;
pub mod serve;
pub mod settings;
pub mod shard;
pub mod signals;

pub use neural_style_core as core;

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
