//! The library's tests, one test binary (the binary's own are in
//! crates/cli/tests/it/): each module is one area.

mod options;
mod parity;
