//! The `neural-style` binary's tests, one test binary: each module is one
//! area, run end to end through the binary (`support.rs`: how it is run,
//! the fixtures and the error contract of a refused run).

mod cli;
mod cuda_cli;
mod features;
mod painter;
mod plan;
mod registry;
mod resume;
mod slurm;
mod speed;
mod studio;
mod support;
mod trust;
mod video;
