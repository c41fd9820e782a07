//! `cargo xtask test`'s count: the `test result:` lines of every run, less
//! the tests that skipped.
//!
//! A test that cannot run here (no Slurm, no browser, no GPU…) calls
//! `neural_style_core::testing::skip::skip(reason)` (`crates/core/src/testing/skip.rs`) and
//! returns; libtest counts it as passed. `skip` appends
//! `<test binary>\t<test name>\t<reason>` to the file named by
//! `NEURAL_STYLE_SKIP_LOG`, which `cargo xtask test` sets; each test found
//! there that libtest reported as `ok` is moved from passed to skipped and
//! listed with its reason.

use anyhow::{bail, Result};
use std::collections::HashSet;
use std::path::Path;

/// The variable `skip` reads (`neural_style_core::testing::skip::LOG_VAR`).
pub const SKIP_LOG_VAR: &str = "NEURAL_STYLE_SKIP_LOG";

/// One line of the skip log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The test executable, without cargo's hash (`slurm`).
    pub binary: String,
    /// libtest's name for the test (`slurm_single_node`).
    pub test: String,
    pub reason: String,
}

/// The skip log's lines, each test once (a test that skipped twice, for two
/// backends it could not create, is one skipped test: its first reason).
/// A line that is not three tab-separated fields is an error naming `file`
/// and the line.
pub fn parse_skips(text: &str, file: &Path) -> Result<Vec<Skip>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(binary), Some(test), Some(reason)) =
            (fields.next(), fields.next(), fields.next())
        else {
            bail!(
                "{}:{}: expected `<test binary>\\t<test name>\\t<reason>`, found {line:?}",
                file.display(),
                i + 1
            );
        };
        if seen.insert((binary.to_string(), test.to_string())) {
            out.push(Skip {
                binary: binary.into(),
                test: test.into(),
                reason: reason.into(),
            });
        }
    }
    Ok(out)
}

/// Totals of cargo test's `test result:` lines, and the names of the tests
/// it reported `ok`.
#[derive(Default)]
pub struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
    ok: HashSet<String>,
}

impl Totals {
    /// Reads one line of cargo test's output.
    pub fn add_line(&mut self, line: &str) {
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... ok"))
        {
            self.ok.insert(name.to_string());
            return;
        }
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next()) {
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        }
    }

    /// The count with `skips` taken into account.
    pub fn with_skips(&self, skips: &[Skip]) -> Tally {
        let (skipped, not_passed): (Vec<Skip>, Vec<Skip>) = skips
            .iter()
            .cloned()
            .partition(|s| self.ok.contains(&s.test));
        let n = skipped.len() as u64;
        Tally {
            passed: self.passed.saturating_sub(n),
            failed: self.failed,
            skipped: self.ignored + n,
            skips: skipped,
            not_passed,
        }
    }
}

/// What `cargo xtask test` reports.
#[derive(Debug, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    /// `#[ignore]`d tests and tests that skipped.
    pub skipped: u64,
    /// The tests that skipped (and libtest counted as passed).
    pub skips: Vec<Skip>,
    /// Tests that logged a skip but did not pass (they failed afterwards,
    /// or their name is not libtest's): not counted as skipped.
    pub not_passed: Vec<Skip>,
}

impl Tally {
    /// The report's lines; the last one is
    /// `xtask: N passed, N failed, N skipped`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.skips.is_empty() {
            out.push(format!(
                "xtask: {} {} skipped on this machine:",
                self.skips.len(),
                if self.skips.len() == 1 {
                    "test"
                } else {
                    "tests"
                }
            ));
            for s in &self.skips {
                out.push(format!("xtask:   {} [{}]: {}", s.test, s.binary, s.reason));
            }
        }
        for s in &self.not_passed {
            out.push(format!(
                "xtask: {} [{}] logged a skip ({}) but did not pass; not counted as skipped",
                s.test, s.binary, s.reason
            ));
        }
        out.push(format!(
            "xtask: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(output: &str) -> Totals {
        let mut t = Totals::default();
        for line in output.lines() {
            t.add_line(line);
        }
        t
    }

    const OUTPUT: &str = "\
running 3 tests
test slurm_single_node ... ok
test every_compiled_backend_gives_the_same_loss ... ok
test broken ... FAILED

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s

running 2 tests
test cuda_candle::agrees_on_the_tiny_cases ... ok
test src/lib.rs - foo (line 3) ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s
";

    #[test]
    fn result_lines_add_up() {
        let t = totals(OUTPUT).with_skips(&[]);
        assert_eq!((t.passed, t.failed, t.skipped), (4, 1, 1));
        assert_eq!(t.lines(), ["xtask: 4 passed, 1 failed, 1 skipped"]);
    }

    #[test]
    fn a_skipped_test_moves_from_passed_to_skipped_and_is_listed() {
        let log = "slurm\tslurm_single_node\tSlurm cannot be started here: no munged\n\
                   parity\tcuda_candle::agrees_on_the_tiny_cases\tcuda backend on `cuda:0` unavailable: no driver\n\
                   parity\tcuda_candle::agrees_on_the_tiny_cases\tsecond call, same test\n\
                   slurm\tbroken\tskipped, then failed\n";
        let skips = parse_skips(log, Path::new("skips.tsv")).unwrap();
        assert_eq!(skips.len(), 3, "one line per test: {skips:?}");
        let t = totals(OUTPUT).with_skips(&skips);
        assert_eq!((t.passed, t.failed, t.skipped), (2, 1, 3));
        assert_eq!(
            t.lines(),
            [
                "xtask: 2 tests skipped on this machine:",
                "xtask:   slurm_single_node [slurm]: Slurm cannot be started here: no munged",
                "xtask:   cuda_candle::agrees_on_the_tiny_cases [parity]: cuda backend on `cuda:0` unavailable: no driver",
                "xtask: broken [slurm] logged a skip (skipped, then failed) but did not pass; not counted as skipped",
                "xtask: 2 passed, 1 failed, 3 skipped",
            ]
        );
    }

    #[test]
    fn the_same_name_in_two_binaries_is_two_tests() {
        let log = "a\tt\tr\nb\tt\tr\n";
        assert_eq!(parse_skips(log, Path::new("f")).unwrap().len(), 2);
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line() {
        let e = parse_skips("a\tb\tc\njust a line\n", Path::new("/tmp/skips.tsv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/tmp/skips.tsv:2: "), "{e}");
    }
}
