//! `cargo xtask gpu-bundle [--out DIR]`: a folder (at most 60 MiB) that runs
//! the cuda backend's GPU check on a machine with an NVIDIA GPU and no
//! registry access: release binaries (the CLI, the cuda crate's tests, the
//! generic parity suite `tests/it/parity.rs` built with candle and cuda, and
//! the iteration bench for device counters), the 8-bit weights, sample
//! images, `run.sh` and a PyTorch timing script (with `canonical.py`, the
//! objective it shares with `tests/reference/objective.py`).
//! `bash DIR/run.sh host` is the dry run on the host executor.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const MAX_BYTES: u64 = 60 << 20;
const RUN_SH: &str = include_str!("../gpu-bundle/run.sh");
const BENCH_TORCH: &str = include_str!("../gpu-bundle/bench_torch_gpu.py");
/// The one statement of the objective in PyTorch, which `bench_torch_gpu.py` imports.
const CANONICAL_PY: &str = include_str!("../../tests/reference/canonical.py");
const README: &str = "GPU check of neural-style's cuda backend (built by `cargo xtask gpu-bundle`).\n\
\n  bash run.sh            # on the GPU machine: cuda:0\n  bash run.sh host       # dry run of the same kernels on the CPU\n\n\
Results go to $OUT (default ./out): summary.txt, one log per step, the loss JSONs,\n\
bench-cuda.jsonl and the PyTorch timing line. Exit status 0 only if every step passed.\n";

pub fn gpu_bundle(args: &[String]) -> Result<()> {
    let out = match args {
        [] => super::root().join("target/gpu-bundle"),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask gpu-bundle [--out DIR]"),
    };
    let weights = super::fetch_weights(&[])?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = super::root();

    eprintln!("$ cargo build --release --features cuda --bin neural-style");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--features",
            "cuda",
            "--bin",
            "neural-style",
        ])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release --features cuda failed ({status})");
    }
    let mut tests = executables(
        &cargo,
        &root,
        &[
            "test",
            "--release",
            "--no-run",
            "-p",
            "neural-style-cuda",
            "--tests",
        ],
        "test",
    )?;
    tests.extend(executables(
        &cargo,
        &root,
        &[
            "test",
            "--release",
            "--no-run",
            "-p",
            "neural-style",
            "--features",
            "candle,cuda",
            "--test",
            "it",
        ],
        "test",
    )?);
    let bench = executables(
        &cargo,
        &root,
        &[
            "bench",
            "--no-run",
            "--no-default-features",
            "--features",
            "candle,cuda",
            "--bench",
            "iteration",
        ],
        "bench",
    )?;

    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    for d in ["bin", "tests", "weights", "images"] {
        std::fs::create_dir_all(out.join(d))?;
    }
    strip_into(
        &root.join("target/release/neural-style"),
        &out.join("bin/neural-style"),
    )?;
    for (name, exe) in &tests {
        strip_into(exe, &out.join("tests").join(name))?;
    }
    for (name, exe) in &bench {
        strip_into(exe, &out.join("bin").join(name))?;
    }
    std::fs::copy(
        &weights,
        out.join("weights")
            .join(weights.file_name().expect("a file")),
    )
    .with_context(|| format!("copying {}", weights.display()))?;
    write_exec(&out.join("run.sh"), RUN_SH)?;
    write_exec(&out.join("bench_torch_gpu.py"), BENCH_TORCH)?;
    std::fs::write(out.join("canonical.py"), CANONICAL_PY)?;
    std::fs::write(out.join("README.txt"), README)?;
    images(&out.join("images"))?;

    let size = dir_size(&out)?;
    eprintln!(
        "gpu-bundle: {} ({:.1} MiB); run `bash {}/run.sh` on the GPU machine, `bash {0}/run.sh host` here",
        out.display(),
        size as f64 / (1 << 20) as f64,
        out.display()
    );
    if size > MAX_BYTES {
        bail!("gpu-bundle: {} MiB is over the 60 MiB limit", size >> 20);
    }
    Ok(())
}

/// Build with `cargo <args>` (a `--no-run` test or bench build) and return
/// `(target name, executable)` of the artifacts of `kind` (`test`, `bench`)
/// from cargo's JSON messages.
fn executables(
    cargo: &str,
    root: &Path,
    args: &[&str],
    kind: &str,
) -> Result<Vec<(String, PathBuf)>> {
    eprintln!("$ cargo {} --message-format=json", args.join(" "));
    let out = Command::new(cargo)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo --no-run")?;
    if !out.status.success() {
        bail!("cargo {} failed ({})", args.join(" "), out.status);
    }
    let mut tests = Vec::new();
    let kind = format!(r#""kind":["{kind}"]"#);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // A test's or bench's artifact: its kind and an executable.
        if !line.contains(r#""reason":"compiler-artifact""#) || !line.contains(&kind) {
            continue;
        }
        let (Some(name), Some(exe)) = (json_str(line, "name"), json_str(line, "executable")) else {
            continue;
        };
        tests.push((name, PathBuf::from(exe)));
    }
    if tests.is_empty() {
        bail!("cargo {} reported no executables", args.join(" "));
    }
    Ok(tests)
}

/// The first `"key":"value"` string in a JSON line (paths and test names
/// here contain no escapes).
fn json_str(line: &str, key: &str) -> Option<String> {
    let pat = format!(r#""{key}":""#);
    let start = line.find(&pat)? + pat.len();
    let len = line[start..].find('"')?;
    Some(line[start..start + len].to_string())
}

fn strip_into(src: &Path, dst: &Path) -> Result<()> {
    let status = Command::new("strip").arg("-o").arg(dst).arg(src).status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!(
            "gpu-bundle: `strip` unavailable or failed; copying {} unstripped",
            src.display()
        );
        std::fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    }
    Ok(())
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(total)
}

/// Sample images (24-bit BMP, which needs no encoder): a 512×384 content
/// photo stand-in and the image to evaluate, and two "paintings".
fn images(dir: &Path) -> Result<()> {
    let tau = std::f32::consts::TAU;
    bmp(&dir.join("content.bmp"), 512, 384, |x, y| {
        let check = if (x / 32 + y / 32) % 2 == 0 {
            60.0
        } else {
            200.0
        };
        [x as f32 / 2.0, y as f32 / 1.6, check]
    })?;
    bmp(&dir.join("x.bmp"), 512, 384, |x, y| {
        let v = 128.0 + 100.0 * ((x as f32 * 0.05).sin() * (y as f32 * 0.07).cos());
        [v, 255.0 - v, (x ^ y) as f32 % 256.0]
    })?;
    bmp(&dir.join("style.bmp"), 400, 300, |x, y| {
        let s =
            ((x as f32 / 400.0 * tau * 3.0).sin() + (y as f32 / 300.0 * tau * 5.0).cos()) * 60.0;
        [128.0 + s, 90.0 - s / 2.0, 160.0 + s / 3.0]
    })?;
    bmp(&dir.join("style2.bmp"), 300, 300, |x, y| {
        let r = (((x as f32 - 150.0).powi(2) + (y as f32 - 150.0).powi(2)).sqrt() / 10.0).sin();
        [
            200.0 * r.abs(),
            40.0 + (x % 50) as f32 * 4.0,
            255.0 - 200.0 * r.abs(),
        ]
    })
}

fn bmp(path: &Path, w: u32, h: u32, rgb: impl Fn(u32, u32) -> [f32; 3]) -> Result<()> {
    let row = (3 * w).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut b = Vec::with_capacity(size as usize);
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&(w as i32).to_le_bytes());
    b.extend_from_slice(&(h as i32).to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    for v in [0u32, row * h, 2835, 2835, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for y in (0..h).rev() {
        let start = b.len();
        for x in 0..w {
            let [r, g, bl] = rgb(x, y).map(|v| v.clamp(0.0, 255.0) as u8);
            b.extend_from_slice(&[bl, g, r]);
        }
        b.resize(start + row as usize, 0);
    }
    std::fs::write(path, b).with_context(|| format!("writing {}", path.display()))
}
