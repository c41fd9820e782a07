//! The whole-CLI comparison of `cargo xtask bench`: our `neural-style`
//! binary against the PyTorch package `pastiche` (1.6.0, MIT), the program
//! users would otherwise run.
//!
//! pastiche lives in its own venv next to the libtorch one
//! (`<cache>/neural-style/pastiche-1.6.0`) and reuses that venv's torch
//! 2.13.0 instead of installing a second one: a `.pth` file puts the libtorch
//! venv's site-packages on its path, and pip installs only pastiche and
//! pillow, with `--no-deps`. Idempotent, like `cargo xtask libtorch`.
//!
//! Time per iteration = (time of a long run − time of a short run) / (the
//! difference in iterations), so start-up (weights, targets, image I/O)
//! cancels; both programs get the same images (the bench's procedural ones,
//! written as PNG), the same size, L-BFGS, and the same thread count.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The pastiche release compared against.
pub const VERSION: &str = "1.6.0";
/// Its one dependency besides torch (pinned, so the venv is reproducible).
const PILLOW: &str = "pillow==11.3.0";

/// `<cache>/neural-style/pastiche-1.6.0`, beside the libtorch venv.
fn venv_dir() -> Result<PathBuf> {
    let torch = super::libtorch::venv_dir()?;
    Ok(torch.with_file_name(format!("pastiche-{VERSION}")))
}

fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// pastiche's version, if `python` imports it (and torch).
fn installed(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import torch, PIL, importlib.metadata as m; print(m.version('pastiche'))",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The pastiche venv's python, creating the venv if needed (needs the
/// libtorch venv: `cargo xtask libtorch`).
pub fn ensure() -> Result<PathBuf> {
    let venv = venv_dir()?;
    let py = python(&venv);
    if installed(&py).as_deref() == Some(VERSION) {
        return Ok(py);
    }
    let (_, torch_dir) = super::libtorch::ensure(true)?;
    let site = torch_dir
        .parent()
        .context("torch's package directory has no parent")?;
    eprintln!(
        "pastiche {VERSION}: creating {} (torch from {})",
        venv.display(),
        site.display()
    );
    if !py.exists() {
        let host = std::env::var("NEURAL_STYLE_HOST_PYTHON").unwrap_or_else(|_| "python3".into());
        run(Command::new(&host).args(["-m", "venv"]).arg(&venv))
            .with_context(|| format!("creating a virtual environment with `{host} -m venv`"))?;
    }
    let out = Command::new(&py)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()?;
    let own_site = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::write(
        own_site.join("neural_style_torch.pth"),
        format!("{}\n", site.display()),
    )
    .with_context(|| format!("writing a .pth file into {}", own_site.display()))?;
    run(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-deps",
        &format!("pastiche=={VERSION}"),
        PILLOW,
    ]))
    .context("pip could not install pastiche (network?)")?;
    match installed(&py) {
        Some(v) if v == VERSION => Ok(py),
        Some(v) => bail!("pip installed pastiche {v}, expected {VERSION}"),
        None => bail!("pastiche does not import from {}", py.display()),
    }
}

/// Wall-clock seconds of one run; fails with the program's last words.
fn seconds(cmd: &mut Command) -> Result<f64> {
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        bail!(
            "{} failed: {}",
            cmd.get_program().to_string_lossy(),
            last.unwrap_or("").trim()
        );
    }
    Ok(secs)
}

/// One program's command line for `iterations` L-BFGS iterations.
pub type Cli<'a> = dyn Fn(usize) -> Command + 'a;

/// Seconds per iteration: `(t(long) − t(short)) / (long − short)`.
pub fn per_iteration(cli: &Cli, (short, long): (usize, usize)) -> Result<f64> {
    let a = seconds(&mut cli(short))?;
    let b = seconds(&mut cli(long))?;
    Ok((b - a) / (long - short) as f64)
}

/// Our CLI: `neural-style -c content.png -s style.png --size N -n ITERS`.
pub fn ours(
    exe: &Path,
    backend: &str,
    images: &Path,
    longest: usize,
    threads: usize,
) -> impl Fn(usize) -> Command {
    let (exe, backend, images) = (exe.to_path_buf(), backend.to_string(), images.to_path_buf());
    move |n| {
        let mut c = Command::new(&exe);
        c.arg("-c")
            .arg(images.join("content.png"))
            .arg("-s")
            .arg(images.join("style.png"))
            .arg("-o")
            .arg(images.join(format!("out-{backend}.png")))
            .args(["--backend", &backend, "--optimizer", "lbfgs"])
            .args([
                "--size",
                &longest.to_string(),
                "--iterations",
                &n.to_string(),
            ])
            .args(["--threads", &threads.to_string()]);
        c
    }
}

/// pastiche's CLI on the CPU, same images, size and thread count.
pub fn pastiche(
    python: &Path,
    images: &Path,
    longest: usize,
    threads: usize,
) -> impl Fn(usize) -> Command {
    let (python, images) = (python.to_path_buf(), images.to_path_buf());
    move |n| {
        let mut c = Command::new(&python);
        c.args(["-m", "pastiche", "--device", "cpu", "--optimizer", "lbfgs"])
            .args(["--no-verbose", "--seed", "0"])
            .args([
                "--size",
                &longest.to_string(),
                "--num-steps",
                &n.to_string(),
            ])
            .arg("-c")
            .arg(images.join("content.png"))
            .arg("-s")
            .arg(images.join("style.png"))
            .arg("-o")
            .arg(images.join("out-pastiche.png"))
            .env("OMP_NUM_THREADS", threads.to_string())
            .env("MKL_NUM_THREADS", threads.to_string());
        c
    }
}
