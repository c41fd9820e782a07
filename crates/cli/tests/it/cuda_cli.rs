//! The `neural-style` binary with the cuda backend: `loss --json` on the
//! host executor agrees with candle (real weights, a small image), and
//! without a GPU `--backend cuda` fails with one line, not a panic.

#![cfg(feature = "cuda")]

use image::{Rgb, RgbImage};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn weights_args() -> Vec<String> {
    let w = PathBuf::from(crate::support::ROOT)
        .join("weights")
        .join("vgg19-caffe-q8.safetensors");
    if w.is_file() {
        vec!["--weights".into(), w.display().to_string()]
    } else {
        Vec::new() // found or fetched like a user's run
    }
}

fn run(args: &[&str], dir: &Path) -> Output {
    crate::support::command(args, dir)
        .args(weights_args())
        .output()
        .expect("the binary runs")
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    RgbImage::from_fn(40, 30, |x, y| {
        let check = if (x / 5 + y / 5) % 2 == 0 { 40 } else { 210 };
        Rgb([(x * 6) as u8, (y * 8) as u8, check])
    })
    .save(dir.path().join("c.png"))
    .unwrap();
    RgbImage::from_fn(32, 32, |x, y| {
        if ((x + y) / 4) % 2 == 0 {
            Rgb([230, 60, 30])
        } else {
            Rgb([20, 40, (250 - x * 6) as u8])
        }
    })
    .save(dir.path().join("s.png"))
    .unwrap();
    RgbImage::from_fn(40, 30, |x, y| {
        Rgb([(x * y) as u8, 128, (255 - x * 5) as u8])
    })
    .save(dir.path().join("x.png"))
    .unwrap();
    dir
}

/// `loss --json` of the fixture at `x.png`, plus `extra`.
fn loss_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "loss", "--json", "-c", "c.png", "-s", "s.png", "--image", "x.png",
    ];
    v.extend_from_slice(extra);
    v
}

fn loss(dir: &Path, backend: &[&str], extra: &[&str]) -> serde_json::Map<String, Value> {
    let mut args = loss_args(&["--size", "40", "--threads", "2"]);
    args.extend(backend);
    args.extend(extra);
    let out = run(&args, dir);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v.as_object().unwrap().clone()
}

#[test]
fn loss_on_the_host_executor_matches_candle() {
    let dir = fixture();
    for extra in [
        &[][..],
        &[
            "--pooling",
            "avg",
            "--style-layers",
            "conv1_1,pool2,relu3_1",
        ][..],
    ] {
        let cuda = loss(
            dir.path(),
            &["--backend", "cuda", "--device", "host"],
            extra,
        );
        let candle = loss(dir.path(), &["--backend", "candle"], extra);
        for k in ["content", "style", "tv", "total", "grad_norm"] {
            let (a, b) = (cuda[k].as_f64().unwrap(), candle[k].as_f64().unwrap());
            let rel = (a - b).abs() / b.abs().max(1e-30);
            eprintln!("{extra:?} {k}: cuda {a} candle {b} rel {rel:.1e}");
            assert!(rel <= 1e-4, "{k}: cuda {a} vs candle {b} (rel {rel:.2e})");
        }
    }
}

#[test]
fn without_a_gpu_the_error_is_one_line() {
    let dir = fixture();
    let out = run(&loss_args(&["--backend", "cuda"]), dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        neural_style_core::testing::skip::skip(
            "this machine has a usable GPU, so `--backend cuda` succeeded",
        );
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("cuda"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn backends_lists_cuda_with_its_devices_or_why_none() {
    let out = crate::support::run(&["backends"], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("cuda"))
        .unwrap_or_else(|| panic!("no cuda line: {text}"));
    assert!(line.contains("host"), "{line}");
    assert!(
        line.contains("cuda:") || line.contains("no GPU") || line.contains("no usable GPU"),
        "{line}"
    );
}
