//! `cargo xtask libtorch [--print-env]`: libtorch 2.13.0 for the `tch`
//! backend, from the `torch==2.13.0` Python wheel (which brings the CUDA
//! runtime libraries its CPU library links against) installed with pip into a
//! virtual environment in the user cache directory. Idempotent: when that
//! environment already has torch 2.13.0, nothing is installed.
//!
//! The environment a build needs (torch-sys reads the first two):
//!
//! * `LIBTORCH_USE_PYTORCH=1` — take libtorch from the Python `torch` package;
//! * `VIRTUAL_ENV`, `PATH` — so that the `python` torch-sys runs is the venv's;
//! * `LD_LIBRARY_PATH` — libtorch's `lib/` for anything run outside cargo
//!   (the binaries built here also record it as their run-time path).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The libtorch that tch 0.26 expects.
pub const VERSION: &str = "2.13.0";

/// `<cache>/neural-style/torch-2.13.0` (`$NEURAL_STYLE_LIBTORCH_VENV` overrides).
pub fn venv_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("NEURAL_STYLE_LIBTORCH_VENV") {
        return Ok(PathBuf::from(dir));
    }
    let cache = neural_style_weights::cache_weights_dir()
        .context("no user cache directory: set NEURAL_STYLE_LIBTORCH_VENV to a directory for the libtorch venv")?;
    Ok(cache.join(format!("torch-{VERSION}")))
}

fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// torch's version and its package directory, if the venv has torch.
fn installed(venv: &Path) -> Option<(String, PathBuf)> {
    let out = Command::new(python(venv))
        .args([
            "-c",
            "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let version = lines.next()?.trim().to_string();
    let dir = PathBuf::from(lines.next()?.trim());
    Some((version, dir))
}

/// Install torch 2.13.0 into the venv unless it is there; returns the venv
/// and torch's package directory.
pub fn ensure(quiet: bool) -> Result<(PathBuf, PathBuf)> {
    let venv = venv_dir()?;
    if let Some((version, dir)) = installed(&venv) {
        if version.split('+').next() == Some(VERSION) {
            if !quiet {
                eprintln!(
                    "libtorch {version}: already installed in {}",
                    venv.display()
                );
            }
            return Ok((venv, dir));
        }
        eprintln!(
            "{} has torch {version}, not {VERSION}: reinstalling",
            venv.display()
        );
    }
    let host_python =
        std::env::var("NEURAL_STYLE_HOST_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "libtorch {VERSION}: creating {} and installing torch=={VERSION} with pip (about 5 GB, a few minutes)…",
        venv.display()
    );
    if !python(&venv).exists() {
        run(Command::new(&host_python).args(["-m", "venv"]).arg(&venv))
            .with_context(|| format!("creating a virtual environment with `{host_python} -m venv` (install python3-venv, or set NEURAL_STYLE_HOST_PYTHON)"))?;
    }
    run(Command::new(python(&venv)).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        &format!("torch=={VERSION}"),
    ]))
    .context("pip could not install torch (network, disk space?)")?;
    match installed(&venv) {
        Some((v, dir)) if v.split('+').next() == Some(VERSION) => Ok((venv, dir)),
        Some((v, _)) => bail!("pip installed torch {v}, expected {VERSION}"),
        None => bail!("torch does not import from {}", python(&venv).display()),
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The variables a `tch` build and its binaries need.
pub fn env(venv: &Path, torch_dir: &Path) -> Vec<(String, String)> {
    let prepend = |var: &str, dir: &Path| {
        let mut v = dir.display().to_string();
        if let Some(old) = std::env::var_os(var).filter(|o| !o.is_empty()) {
            v.push(':');
            v.push_str(&old.to_string_lossy());
        }
        v
    };
    vec![
        ("LIBTORCH_USE_PYTORCH".into(), "1".into()),
        ("VIRTUAL_ENV".into(), venv.display().to_string()),
        ("PATH".into(), prepend("PATH", &venv.join("bin"))),
        // Not prepended: under `cargo run` the inherited value is cargo's own.
        (
            "LD_LIBRARY_PATH".into(),
            torch_dir.join("lib").display().to_string(),
        ),
    ]
}

/// `cargo xtask libtorch [--print-env]`.
pub fn main(args: &[String]) -> Result<()> {
    let print_only = match args {
        [] => false,
        [flag] if flag == "--print-env" => true,
        _ => bail!("usage: cargo xtask libtorch [--print-env]"),
    };
    let (venv, torch_dir) = ensure(print_only)?;
    let vars = env(&venv, &torch_dir);
    if !print_only {
        eprintln!("\nBuild the tch backend with these variables set, for example:");
        eprintln!("    export $(cargo xtask libtorch --print-env)");
        eprintln!("    cargo build --release --features tch\n");
    }
    for (k, v) in vars {
        println!("{k}={v}");
    }
    Ok(())
}
