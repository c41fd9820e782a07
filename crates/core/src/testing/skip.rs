//! A test that cannot run here says so, and is counted as skipped.
//!
//! libtest has no run-time skip: a test that finds no Slurm, no browser or
//! no GPU can only return, and is then counted as passed. Every such test
//! calls [`skip`] before it returns. It says on stderr which test skipped
//! and why; and when `cargo xtask test` runs the tests it names a file in
//! [`LOG_VAR`], to which [`skip`] appends one line per skip:
//!
//! ```text
//! <test binary>\t<test name>\t<reason>
//! ```
//!
//! The binary is the test executable's name without cargo's hash
//! (`slurm`, `conformance`, `neural_style_core`), the test name is libtest's
//! (`slurm_single_node`, `cuda_candle::agrees_on_the_tiny_cases`: the name
//! libtest gives the test's thread), and the reason is on one line. xtask
//! (`xtask/src/tally.rs`) counts each such test as skipped instead of passed and
//! lists it with its reason.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;

/// The environment variable naming the file that [`skip`] appends to.
pub const LOG_VAR: &str = "NEURAL_STYLE_SKIP_LOG";

/// Records that the running test skips (all of it, or the rest of its
/// checks) for `reason`: prints `skipped <test>: <reason>` on stderr and,
/// when [`LOG_VAR`] names a file, appends the test's line to it. The caller
/// then returns. Panics (failing the test) if the log cannot be written: a
/// skip that is not counted would be counted as a pass.
pub fn skip(reason: impl Display) {
    let test = test_name();
    let reason = one_line(&reason.to_string());
    eprintln!("skipped {test}: {reason}");
    let Some(log) = std::env::var_os(LOG_VAR) else {
        return;
    };
    let line = format!("{}\t{test}\t{reason}\n", binary_name());
    // One write of one short line to a file opened for appending: lines from
    // tests running in parallel (threads or processes) do not interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("{LOG_VAR}={}: {e}", Path::new(&log).display());
    }
}

/// libtest's name for the running test: the name of the thread it runs on
/// (libtest names each test's thread after it, `--test-threads=1` too).
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "<unnamed test thread>".to_string(),
    }
}

/// The test executable's name without the `-<hash>` cargo appends.
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .unwrap_or("<unknown binary>");
    strip_hash(stem).to_string()
}

fn strip_hash(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash))
            if !name.is_empty()
                && hash.len() == 16
                && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            name
        }
        _ => stem,
    }
}

/// Tabs and line breaks (an error's source chain) become spaces: one line,
/// three fields.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_s_hash_is_dropped_and_nothing_else() {
        assert_eq!(strip_hash("slurm-0123456789abcdef"), "slurm");
        assert_eq!(
            strip_hash("neural_style_core-fedcba9876543210"),
            "neural_style_core"
        );
        assert_eq!(strip_hash("cuda_cli"), "cuda_cli");
        assert_eq!(strip_hash("my-test"), "my-test");
        assert_eq!(strip_hash("-0123456789abcdef"), "-0123456789abcdef");
    }

    #[test]
    fn a_reason_is_one_line_without_tabs() {
        assert_eq!(
            one_line("no driver:\n  libcuda.so\tnot found\r\n"),
            "no driver: libcuda.so not found"
        );
    }

    #[test]
    fn the_test_is_named_by_its_thread() {
        assert_eq!(
            test_name(),
            "testing::skip::tests::the_test_is_named_by_its_thread"
        );
    }
}
